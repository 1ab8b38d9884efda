package dashboard

import (
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/shardform/shardform/placement"
	"github.com/shardform/shardform/provision"
)

type nodeListData struct {
	Nodes  []provision.Node
	Pager  pager
	Status string
}

func (d *Dashboard) nodeList(c *fiber.Ctx, s *session, v *view) error {
	v.Title, v.Nav = "Nodes", "nodes"
	q := listQuery(c, "status", "provider")
	var out struct {
		Data []provision.Node `json:"data"`
		Meta listMeta         `json:"meta"`
	}
	if err := d.do(c, s, call{method: "GET", path: "/v1/nodes", query: q, out: &out}); err != nil {
		return err
	}
	v.Data = &nodeListData{Nodes: out.Data, Pager: pager{out.Meta, q}, Status: q.Get("status")}
	return d.render(c, "node_list", v)
}

// usage is reserved against capacity of one resource.
type usage struct {
	Name          string
	Reserved, Cap float64
	Unit          string
}

type nodeShowData struct {
	Node      provision.Node
	Instances []placement.Instance
	Usage     []usage
	Rules     []provision.FirewallRule
	Types     []string // the provider's instance types, for resize
}

func (d *Dashboard) nodeShow(c *fiber.Ctx, s *session, v *view) error {
	v.Nav, v.Title = "nodes", "Node"
	id := url.PathEscape(c.Params("id"))
	data := &nodeShowData{}
	if err := d.do(c, s, call{method: "GET", path: "/v1/nodes/" + id, out: &data.Node}); err != nil {
		return err
	}
	v.Title = data.Node.Name
	var inst struct {
		Data []placement.Instance `json:"data"`
	}
	if err := d.do(c, s, call{method: "GET", path: "/v1/instances", query: url.Values{"node": {c.Params("id")}, "limit": {"100"}}, out: &inst}); err != nil {
		var aerr *APIError
		if !errors.As(err, &aerr) || aerr.Status != http.StatusNotFound { // 404: no instance routes on this server
			return err
		}
	}
	data.Instances = inst.Data
	n := data.Node
	data.Usage = []usage{
		{Name: "CPU", Reserved: float64(n.Reserved.CPUMillis) / 1000, Cap: float64(n.VCPU), Unit: "vCPU"},
		{Name: "Memory", Reserved: float64(n.Reserved.MemoryMB) / 1024, Cap: float64(n.MemoryMB) / 1024, Unit: "GiB"},
		{Name: "Disk", Reserved: float64(n.Reserved.DiskGB), Cap: float64(n.DiskGB), Unit: "GB"},
	}
	var rules struct {
		Data []provision.FirewallRule `json:"data"`
	}
	if data.Node.ProvisionID != nil {
		if err := d.do(c, s, call{method: "GET", path: "/v1/nodes/" + id + "/firewall/rules", out: &rules}); err == nil {
			data.Rules = rules.Data
		}
		if provs, err := d.catalog(c, s); err == nil {
			for _, p := range provs {
				if p.Name == data.Node.Provider {
					for _, t := range p.InstanceTypes {
						data.Types = append(data.Types, t.Name)
					}
				}
			}
		}
	}
	v.Data = data
	return d.render(c, "node_show", v)
}

// nodeAction posts one node action to the API.
func (d *Dashboard) nodeAction(c *fiber.Ctx, s *session, v *view) error {
	id := url.PathEscape(c.Params("id"))
	base := "/v1/nodes/" + id
	var k call
	switch a := c.Params("action"); a {
	case "cordon", "uncordon", "drain":
		k = call{method: "POST", path: base + "/" + a}
	case "start", "stop", "reboot":
		k = call{method: "POST", path: base + "/power/" + a}
	case "resize":
		k = call{method: "POST", path: base + "/resize", body: provision.ResizeRequest{InstanceType: c.FormValue("instance_type"), Apply: c.FormValue("apply") == "on"}}
	case "firewall-add":
		var ips []string
		for _, ip := range strings.FieldsFunc(c.FormValue("source_ips"), func(r rune) bool { return r == ',' || r == ' ' || r == '\n' }) {
			ips = append(ips, ip)
		}
		k = call{method: "POST", path: base + "/firewall/rules", body: provision.RuleInput{
			Direction: "in", Protocol: c.FormValue("protocol"), Port: strings.TrimSpace(c.FormValue("port")),
			SourceIPs: ips, Description: strings.TrimSpace(c.FormValue("description"))}}
	case "firewall-remove":
		k = call{method: "DELETE", path: base + "/firewall/rules/" + url.PathEscape(c.FormValue("rule_id"))}
	default:
		return &APIError{Status: http.StatusNotFound, Message: "no such action"}
	}
	if err := d.do(c, s, k); err != nil {
		if aerr, ok := formRefusal(err); ok && aerr.Status != http.StatusNotFound {
			d.flash(c, aerr.Message)
			return redirect(c, "/nodes/"+id)
		}
		return err
	}
	d.flash(c, c.Params("action")+": requested.")
	return redirect(c, "/nodes/"+id)
}
