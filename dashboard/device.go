package dashboard

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/shardform/shardform/identity"
)

// deviceData is the approval page of `shardform login`'s device flow: the
// code the CLI printed, what it asks for once the code is known, and the
// organization its token is for.
type deviceData struct {
	Code    string
	Pending *identity.DevicePending
	OrgID   string
}

// deviceForm shows the form; with ?code= (the CLI's verification_uri_complete)
// it shows what that device asks for.
func (d *Dashboard) deviceForm(c *fiber.Ctx, s *session, v *view) error {
	v.Title, v.Nav = "Approve a device", "device"
	data := &deviceData{Code: strings.TrimSpace(c.Query("code")), OrgID: v.OrgID()}
	v.Data = data
	if data.Code == "" {
		return d.render(c, "device", v)
	}
	var p identity.DevicePending
	err := d.do(c, s, call{method: "GET", path: "/v1/auth/device", query: url.Values{"user_code": {data.Code}}, out: &p})
	if aerr, ok := formRefusal(err); ok {
		v.Error = aerr.Message
		return d.render(c, "device", v)
	}
	if err != nil {
		return err
	}
	data.Pending = &p
	return d.render(c, "device", v)
}

// deviceDecide approves or denies the code for the chosen organization
// through the API (which accepts only a session: this one).
func (d *Dashboard) deviceDecide(c *fiber.Ctx, s *session, v *view) error {
	v.Title, v.Nav = "Approve a device", "device"
	code := strings.TrimSpace(c.FormValue("user_code"))
	data := &deviceData{Code: code, OrgID: c.FormValue("organization_id")}
	v.Data = data
	var err error
	var client string
	switch c.FormValue("decision") {
	case "approve":
		var out identity.DeviceApproval
		org, perr := uuid.Parse(data.OrgID)
		if perr != nil {
			v.Error = "organization: choose the organization the device's token is for"
			c.Status(http.StatusBadRequest)
			return d.render(c, "device", v)
		}
		err = d.do(c, s, call{method: "POST", path: "/v1/auth/device/approve", body: identity.DeviceApproveRequest{UserCode: code, OrganizationID: org}, out: &out})
		client = out.ClientName
	case "deny":
		var out identity.DeviceDenial
		err = d.do(c, s, call{method: "POST", path: "/v1/auth/device/deny", body: identity.DeviceUserCode{UserCode: code}, out: &out})
		client = out.ClientName
	default:
		v.Error = "decision: approve or deny"
		c.Status(http.StatusBadRequest)
		return d.render(c, "device", v)
	}
	if aerr, ok := formRefusal(err); ok {
		v.Error = aerr.Message
		c.Status(aerr.Status)
		return d.render(c, "device", v)
	}
	if err != nil {
		return err
	}
	if c.FormValue("decision") == "approve" {
		d.flash(c, "Approved “"+client+"”: go back to your terminal, it is signed in.")
	} else {
		d.flash(c, "Denied “"+client+"”: it gets no token.")
	}
	return redirect(c, "/device")
}
