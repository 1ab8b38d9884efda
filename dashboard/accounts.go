package dashboard

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/shardform/shardform/audit"
	"github.com/shardform/shardform/domain"
	"github.com/shardform/shardform/identity"
)

type tokenListData struct {
	Tokens  []identity.APIToken
	Pager   pager
	Scopes  []domain.PermissionInfo
	Created *identity.APIToken // the token just created: its secret, shown once
	Name    string
}

func (d *Dashboard) tokenList(c *fiber.Ctx, s *session, v *view) error {
	return d.renderTokens(c, s, v, nil, "")
}

func (d *Dashboard) renderTokens(c *fiber.Ctx, s *session, v *view, created *identity.APIToken, name string) error {
	v.Title, v.Nav = "API tokens", "tokens"
	q := listQuery(c)
	var out struct {
		Data []identity.APIToken `json:"data"`
		Meta listMeta            `json:"meta"`
	}
	if err := d.do(c, s, call{method: "GET", path: "/v1/api-tokens", query: q, out: &out}); err != nil {
		return err
	}
	var scopes []domain.PermissionInfo
	for _, p := range domain.Catalog() {
		if v.Can(string(p.Key)) { // a token carries only what its owner holds
			scopes = append(scopes, p)
		}
	}
	v.Data = &tokenListData{Tokens: out.Data, Pager: pager{out.Meta, q}, Scopes: scopes, Created: created, Name: name}
	return d.render(c, "tokens", v)
}

// tokenCreate creates the token and shows its secret on this answer only
// (never stored, never in a redirect).
func (d *Dashboard) tokenCreate(c *fiber.Ctx, s *session, v *view) error {
	req := identity.APITokenRequest{Name: strings.TrimSpace(c.FormValue("name"))}
	for _, sc := range c.Request().PostArgs().PeekMulti("scopes") {
		req.Scopes = append(req.Scopes, domain.Permission(sc))
	}
	if days, err := strconv.Atoi(c.FormValue("expires_days")); err == nil && days > 0 {
		secs := int64(days) * 86400
		req.ExpiresIn = &secs
	}
	var t identity.APIToken
	err := d.do(c, s, call{method: "POST", path: "/v1/api-tokens", body: req, out: &t})
	if aerr, ok := formRefusal(err); ok {
		v.Error = aerr.Message
		c.Status(aerr.Status)
		return d.renderTokens(c, s, v, nil, req.Name)
	}
	if err != nil {
		return err
	}
	c.Status(http.StatusCreated)
	return d.renderTokens(c, s, v, &t, "")
}

func (d *Dashboard) tokenDelete(c *fiber.Ctx, s *session, v *view) error {
	if err := d.do(c, s, call{method: "DELETE", path: "/v1/api-tokens/" + url.PathEscape(c.Params("id"))}); err != nil {
		return err
	}
	d.flash(c, "Token deleted.")
	return redirect(c, "/tokens")
}

type memberListData struct {
	Members []identity.Member
	Invites []identity.Invite
	Created *identity.Invite
	Roles   []domain.Role
}

func (d *Dashboard) memberList(c *fiber.Ctx, s *session, v *view) error {
	return d.renderMembers(c, s, v, nil)
}

func (d *Dashboard) renderMembers(c *fiber.Ctx, s *session, v *view, created *identity.Invite) error {
	v.Title, v.Nav = "Members", "members"
	base := "/v1/organizations/" + url.PathEscape(v.OrgID())
	data := &memberListData{Created: created, Roles: domain.Roles()}
	var members struct {
		Data []identity.Member `json:"data"`
	}
	if err := d.do(c, s, call{method: "GET", path: base + "/members", query: url.Values{"limit": {"100"}}, out: &members}); err != nil {
		return err
	}
	data.Members = members.Data
	if v.Can(string(domain.PermMembersAdmin)) {
		var invites struct {
			Data []identity.Invite `json:"data"`
		}
		if err := d.do(c, s, call{method: "GET", path: base + "/invites", query: url.Values{"limit": {"100"}}, out: &invites}); err != nil {
			return err
		}
		data.Invites = invites.Data
	}
	v.Data = data
	return d.render(c, "members", v)
}

func (d *Dashboard) memberInvite(c *fiber.Ctx, s *session, v *view) error {
	req := identity.InviteRequest{Email: strings.TrimSpace(c.FormValue("email")), Role: domain.Role(c.FormValue("role"))}
	var inv identity.Invite
	err := d.do(c, s, call{method: "POST", path: "/v1/organizations/" + url.PathEscape(v.OrgID()) + "/members", body: req, out: &inv})
	if aerr, ok := formRefusal(err); ok {
		v.Error = aerr.Message
		c.Status(aerr.Status)
		return d.renderMembers(c, s, v, nil)
	}
	if err != nil {
		return err
	}
	c.Status(http.StatusCreated)
	return d.renderMembers(c, s, v, &inv)
}

func (d *Dashboard) inviteDelete(c *fiber.Ctx, s *session, v *view) error {
	if err := d.do(c, s, call{method: "DELETE", path: "/v1/organizations/" + url.PathEscape(v.OrgID()) + "/invites/" + url.PathEscape(c.Params("id"))}); err != nil {
		return err
	}
	d.flash(c, "Invite withdrawn.")
	return redirect(c, "/members")
}

type auditData struct {
	Entries []audit.Entry
	Pager   pager
	Filter  url.Values
	Members []identity.Member
}

func (d *Dashboard) auditList(c *fiber.Ctx, s *session, v *view) error {
	v.Title, v.Nav = "Audit log", "audit"
	q := listQuery(c, "action", "target", "user_id")
	var out struct {
		Data []audit.Entry `json:"data"`
		Meta listMeta      `json:"meta"`
	}
	if err := d.do(c, s, call{method: "POST", path: "/v1/admin/audit-logs/search", out: &out,
		body: searchBody(q, map[string]string{"target": "target", "user_id": "user_id"}, map[string]string{"action": "action"})}); err != nil {
		return err
	}
	data := &auditData{Entries: out.Data, Pager: pager{out.Meta, q}, Filter: q}
	var members struct {
		Data []identity.Member `json:"data"`
	}
	if err := d.do(c, s, call{method: "GET", path: "/v1/organizations/" + url.PathEscape(v.OrgID()) + "/members", query: url.Values{"limit": {"100"}}, out: &members}); err == nil {
		data.Members = members.Data // to name the users (members:read; without it, ids)
	}
	v.Data = data
	return d.render(c, "audit", v)
}

// memberAction changes a member's role or removes them.
func (d *Dashboard) memberAction(c *fiber.Ctx, s *session, v *view) error {
	base := "/v1/organizations/" + url.PathEscape(v.OrgID()) + "/members/" + url.PathEscape(c.Params("id"))
	var k call
	switch c.Params("action") {
	case "role":
		k = call{method: "PUT", path: base + "/role", body: map[string]string{"role": c.FormValue("role")}}
	case "remove":
		k = call{method: "DELETE", path: base}
	default:
		return &APIError{Status: http.StatusNotFound, Message: "no such action"}
	}
	if err := d.do(c, s, k); err != nil {
		var aerr *APIError
		if !errors.As(err, &aerr) || aerr.Status >= 500 || aerr.Status == http.StatusUnauthorized {
			return err
		}
		d.flash(c, aerr.Message)
	} else {
		d.flash(c, "Member updated.")
	}
	return redirect(c, "/members")
}
