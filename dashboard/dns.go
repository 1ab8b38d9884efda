package dashboard

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/shardform/shardform/dns"
)

type dnsData struct {
	Records []dns.Record
	Pager   pager
	Filter  url.Values
	Auto    *dns.AutoConfig
	Zones   []dns.Zone
	Form    map[string]string
}

func (d *Dashboard) dnsPage(c *fiber.Ctx, s *session, v *view) error {
	return d.renderDNS(c, s, v, map[string]string{})
}

func (d *Dashboard) renderDNS(c *fiber.Ctx, s *session, v *view, form map[string]string) error {
	v.Title, v.Nav = "DNS", "dns"
	q := listQuery(c, "type", "name", "status")
	data := &dnsData{Filter: q, Form: form}
	var recs struct {
		Data []dns.Record `json:"data"`
		Meta listMeta     `json:"meta"`
	}
	if err := d.do(c, s, call{method: "GET", path: "/v1/dns/records", query: q, out: &recs}); err != nil {
		return err
	}
	data.Records, data.Pager = recs.Data, pager{recs.Meta, q}
	var auto dns.AutoConfig
	if err := d.do(c, s, call{method: "GET", path: "/v1/dns/auto-config", out: &auto}); err == nil {
		data.Auto = &auto
	}
	var zones struct {
		Data []dns.Zone `json:"data"`
	}
	if err := d.do(c, s, call{method: "GET", path: "/v1/dns/zones", out: &zones}); err == nil {
		data.Zones = zones.Data
	} else if v.Error == "" {
		var aerr *APIError
		if errors.As(err, &aerr) {
			v.Notice = "Zones: " + aerr.Message
		}
	}
	v.Data = data
	return d.render(c, "dns", v)
}

func (d *Dashboard) dnsAction(c *fiber.Ctx, s *session, v *view) error {
	var k call
	form := map[string]string{}
	switch c.Params("action") {
	case "create":
		for _, f := range []string{"zone_id", "type", "name", "content", "ttl"} {
			form[f] = strings.TrimSpace(c.FormValue(f))
		}
		req := dns.CreateRequest{ZoneID: form["zone_id"], Type: form["type"], Name: form["name"], Content: form["content"]}
		if ttl, err := strconv.Atoi(form["ttl"]); err == nil {
			req.TTL = &ttl
		}
		k = call{method: "POST", path: "/v1/dns/records", body: req}
	case "delete":
		k = call{method: "DELETE", path: "/v1/dns/records/" + url.PathEscape(c.FormValue("id"))}
	case "auto":
		ttl, _ := strconv.Atoi(c.FormValue("ttl"))
		proxied, ipv6 := c.FormValue("proxied") == "on", c.FormValue("ipv6") == "on"
		req := dns.AutoConfigRequest{Enabled: c.FormValue("enabled") == "on", ZoneID: strings.TrimSpace(c.FormValue("zone_id")),
			NameTemplate: strings.TrimSpace(c.FormValue("name_template")), Proxied: &proxied, IPv6: &ipv6}
		if ttl > 0 {
			req.TTL = &ttl
		}
		k = call{method: "PUT", path: "/v1/dns/auto-config", body: req}
	default:
		return &APIError{Status: http.StatusNotFound, Message: "no such action"}
	}
	err := d.do(c, s, k)
	if aerr, ok := formRefusal(err); ok {
		v.Error = aerr.Message
		c.Status(aerr.Status)
		return d.renderDNS(c, s, v, form)
	}
	if err != nil {
		return err
	}
	d.flash(c, "Saved: the change reaches Cloudflare in a moment.")
	return redirect(c, "/dns")
}
