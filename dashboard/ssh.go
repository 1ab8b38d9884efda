package dashboard

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/shardform/shardform/sshca"
	"github.com/shardform/shardform/sshsign"
)

type sshData struct {
	Certificates []sshsign.Certificate
	Pager        pager
	State        string
	CAKeys       []sshsign.CAKey
	HostCAKeys   []sshsign.CAKey
	Signed       *sshsign.Signed
	Form         map[string]string
	Policy       *sshca.Policy
}

func (d *Dashboard) sshPage(c *fiber.Ctx, s *session, v *view) error {
	return d.renderSSH(c, s, v, nil, map[string]string{})
}

func (d *Dashboard) renderSSH(c *fiber.Ctx, s *session, v *view, signed *sshsign.Signed, form map[string]string) error {
	v.Title, v.Nav = "SSH", "ssh"
	q := listQuery(c, "state")
	q.Set("user", "me")
	data := &sshData{Signed: signed, Form: form, State: q.Get("state")}
	var certs struct {
		Data []sshsign.Certificate `json:"data"`
		Meta listMeta              `json:"meta"`
	}
	if err := d.do(c, s, call{method: "GET", path: "/v1/ssh/certificates", query: q, out: &certs}); err != nil {
		return err
	}
	data.Certificates, data.Pager = certs.Data, pager{certs.Meta, q}
	var pol sshca.Policy
	if err := d.do(c, s, call{method: "GET", path: "/v1/ssh/policy", out: &pol}); err == nil {
		data.Policy = &pol
	}
	if v.Can("ssh:admin") {
		var keys, hostKeys struct {
			Data []sshsign.CAKey `json:"data"`
		}
		if err := d.do(c, s, call{method: "GET", path: "/v1/ssh/ca/keys", out: &keys}); err != nil {
			return err
		}
		if err := d.do(c, s, call{method: "GET", path: "/v1/ssh/host-ca/keys", out: &hostKeys}); err != nil {
			return err
		}
		data.CAKeys, data.HostCAKeys = keys.Data, hostKeys.Data
	}
	v.Data = data
	return d.render(c, "ssh", v)
}

// sshSign signs a pasted public key (POST /v1/ssh/certificate); the
// certificate is shown with a download link of its own (a data: URI, so
// nothing is stored for it).
func (d *Dashboard) sshSign(c *fiber.Ctx, s *session, v *view) error {
	form := map[string]string{"public_key": strings.TrimSpace(c.FormValue("public_key")), "principals": c.FormValue("principals"), "validity_hours": c.FormValue("validity_hours")}
	req := sshsign.SignRequest{PublicKey: form["public_key"], Principals: strings.Fields(strings.ReplaceAll(form["principals"], ",", " "))}
	if h, err := strconv.Atoi(form["validity_hours"]); err == nil {
		req.ValidityHours = &h
	}
	var out sshsign.Signed
	err := d.do(c, s, call{method: "POST", path: "/v1/ssh/certificate", body: req, out: &out})
	if aerr, ok := formRefusal(err); ok {
		v.Error = aerr.Message
		c.Status(aerr.Status)
		return d.renderSSH(c, s, v, nil, form)
	}
	if err != nil {
		return err
	}
	return d.renderSSH(c, s, v, &out, map[string]string{})
}

// sshAction: revoke a certificate, rotate or retire a CA key.
func (d *Dashboard) sshAction(c *fiber.Ctx, s *session, v *view) error {
	id := url.PathEscape(c.FormValue("id"))
	var k call
	switch c.Params("action") {
	case "revoke":
		k = call{method: "POST", path: "/v1/ssh/certificates/" + id + "/revoke"}
	case "rotate":
		k = call{method: "POST", path: "/v1/ssh/ca/keys/rotate"}
	case "rotate-host":
		k = call{method: "POST", path: "/v1/ssh/host-ca/keys/rotate"}
	case "retire":
		k = call{method: "POST", path: "/v1/ssh/ca/keys/" + id + "/retire"}
	case "policy":
		split := func(f string) []string {
			return strings.FieldsFunc(c.FormValue(f), func(r rune) bool { return r == ',' || r == ' ' || r == '\n' })
		}
		def, _ := strconv.Atoi(c.FormValue("default_validity_hours"))
		maxh, _ := strconv.Atoi(c.FormValue("max_validity_hours"))
		k = call{method: "PUT", path: "/v1/ssh/policy", body: sshca.Policy{
			AllowedPrincipals: split("allowed_principals"), DefaultValidityHours: def, MaxValidityHours: maxh,
			AllowedKeyTypes: split("allowed_key_types"), Extensions: split("extensions"),
			ForceSourceAddress: strings.TrimSpace(c.FormValue("force_source_address"))}}
	case "retire-host":
		k = call{method: "POST", path: "/v1/ssh/host-ca/keys/" + id + "/retire"}
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
		d.flash(c, "Done: "+c.Params("action")+".")
	}
	return redirect(c, "/ssh")
}
