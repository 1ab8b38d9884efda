package providers

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/shardform/shardform/planner"
)

// HetznerTokenVariable is the Terraform variable that carries the Hetzner
// API token: passed as a sensitive variable at run time, never written into
// the configuration.
const HetznerTokenVariable = "hcloud_token"

// DefaultHetznerImage is the image used when a request names none.
const DefaultHetznerImage = "ubuntu-24.04"

// Hetzner renders hcloud_server (with its SSH keys and a firewall) for the
// hetznercloud/hcloud Terraform provider. Its catalog comes from the
// planner's pricing catalog (the embedded snapshot, or a live read).
type Hetzner struct {
	// Endpoint is the Hetzner Cloud API the provider calls; empty: Hetzner's own.
	Endpoint string
	regions  []Region
	types    []InstanceType
	inRegion map[string]map[string]bool // region → the type names sold there
}

// NewHetzner builds the driver from the Hetzner part of a pricing catalog,
// leaving out types that can no longer be ordered at now.
func NewHetzner(c planner.Catalog, now time.Time) *Hetzner {
	h := &Hetzner{inRegion: map[string]map[string]bool{}}
	seenRegion := map[string]bool{}
	for _, l := range c.Locations {
		if l.Provider == "hetzner" && !seenRegion[l.Region] {
			seenRegion[l.Region] = true
			h.regions = append(h.regions, Region{Name: l.Region, Description: "Hetzner " + l.Region})
		}
	}
	seenType := map[string]bool{}
	for _, t := range c.Types {
		if t.Provider != "hetzner" || t.StatusAt(now) == planner.StatusUnavailable {
			continue
		}
		if !seenRegion[t.Region] {
			seenRegion[t.Region] = true
			h.regions = append(h.regions, Region{Name: t.Region, Description: "Hetzner " + t.Region})
		}
		addInRegion(h.inRegion, t.Region, t.Name)
		if seenType[t.Name] {
			continue
		}
		seenType[t.Name] = true
		h.types = append(h.types, InstanceType{
			Name: t.Name, VCPU: t.VCPU, MemoryMB: int(t.MemoryMiB), DiskGB: int(t.DiskGB),
			MonthlyPrice: t.Monthly.Amount(), Currency: t.Monthly.Currency,
		})
	}
	for _, o := range c.Unpriced {
		if o.Provider == "hetzner" && seenType[o.Name] && seenRegion[o.Region] {
			addInRegion(h.inRegion, o.Region, o.Name)
		}
	}
	sort.Slice(h.regions, func(i, j int) bool { return h.regions[i].Name < h.regions[j].Name })
	sort.Slice(h.types, func(i, j int) bool { return h.types[i].Name < h.types[j].Name })
	return h
}

// Name implements Driver.
func (*Hetzner) Name() string { return "hetzner" }

// Regions implements Driver.
func (h *Hetzner) Regions() []Region { return h.regions }

// InstanceTypes implements Driver.
func (h *Hetzner) InstanceTypes() []InstanceType { return h.types }

// InstanceTypesIn implements RegionalTypes: the types the catalog sells in
// region (cx and cax only in the EU locations).
func (h *Hetzner) InstanceTypesIn(region string) []InstanceType {
	return typesIn(h.types, h.inRegion[region])
}

// CredentialProvider implements Credentialed: a hetzner credential ({token}).
func (*Hetzner) CredentialProvider() string { return "hetzner" }

// Variables implements Credentialed.
func (*Hetzner) Variables(secret map[string]string) map[string]string {
	return map[string]string{HetznerTokenVariable: secret["token"]}
}

// Render implements Driver.
func (h *Hetzner) Render(req Request) ([]byte, error) {
	image := req.Image
	if image == "" {
		image = DefaultHetznerImage
	}
	base := "shardform-" + req.Name
	labels := map[string]string{"managed-by": "shardform", "shardform-provision": req.ID}
	for k, v := range req.Labels {
		labels[escape(k)] = escape(v)
	}
	keys := map[string]any{}
	var keyRefs []string
	for i, k := range req.SSHKeys {
		name := fmt.Sprintf("key_%d", i)
		keys[name] = map[string]any{
			"name":       fmt.Sprintf("%s-%s-%d", base, shortID(req.ID), i),
			"public_key": escape(strings.TrimSpace(k)),
			"labels":     map[string]string{"managed-by": "shardform"},
		}
		keyRefs = append(keyRefs, fmt.Sprintf("${hcloud_ssh_key.%s.id}", name))
	}
	server := map[string]any{
		"name":         escape(req.Name),
		"server_type":  escape(req.InstanceType),
		"image":        escape(image),
		"location":     escape(req.Region),
		"labels":       labels,
		"firewall_ids": []string{"${hcloud_firewall.node.id}"},
		"public_net":   []any{map[string]any{"ipv4_enabled": true, "ipv6_enabled": true}},
	}
	if len(keyRefs) > 0 {
		server["ssh_keys"] = keyRefs
	}
	if req.Join != nil {
		join, err := joinCloudConfig(req.Join)
		if err != nil {
			return nil, fmt.Errorf("hetzner: render: %w", err)
		}
		server["user_data"] = "#cloud-config\n" + join
		// Minted anew for every plan, used once at first boot (see aws).
		server["lifecycle"] = []any{map[string]any{"ignore_changes": []string{"user_data"}}}
	}
	resources := map[string]any{
		"hcloud_server": map[string]any{"node": server},
		"hcloud_firewall": map[string]any{"node": map[string]any{
			"name":   base + "-" + shortID(req.ID),
			"labels": map[string]string{"managed-by": "shardform"},
			"rule":   hcloudRules(req.firewall()),
		}},
	}
	if len(keys) > 0 {
		resources["hcloud_ssh_key"] = keys
	}
	provider := map[string]any{"token": "${var." + HetznerTokenVariable + "}"}
	if h.Endpoint != "" {
		provider["endpoint"] = escape(h.Endpoint)
	}
	vars := map[string]any{HetznerTokenVariable: map[string]any{"type": "string", "sensitive": true}}
	joinVariable(vars, req.Join)
	cfg := tfConfig{
		Terraform: map[string]any{
			"backend": map[string]any{"http": map[string]any{}},
			"required_providers": map[string]any{
				"hcloud": map[string]any{"source": "hetznercloud/hcloud", "version": "~> 1.49"},
			},
		},
		Variable: vars,
		Provider: map[string]any{"hcloud": provider},
		Resource: resources,
		Output: map[string]any{
			"server_id": map[string]any{"value": "${hcloud_server.node.id}"},
			"ipv4":      map[string]any{"value": "${hcloud_server.node.ipv4_address}"},
			"ipv6":      map[string]any{"value": "${hcloud_server.node.ipv6_address}"},
		},
	}
	return cfg.marshal("hetzner")
}

// hcloudRules are the firewall's rules (hcloud_firewall "rule" blocks).
func hcloudRules(rules []FirewallRule) []any {
	out := make([]any, 0, len(rules))
	for _, r := range rules {
		rule := map[string]any{"direction": "in", "protocol": escape(r.Protocol), "source_ips": escapeList(r.SourceIPs), "description": escape(r.Description)}
		if p := r.Port(); p != "" {
			rule["port"] = p
		}
		out = append(out, rule)
	}
	return out
}

// Node implements Driver.
func (*Hetzner) Node(outputs map[string]json.RawMessage) (Node, error) {
	var n Node
	var err error
	if n.IPv4, err = stringOutput(outputs, "ipv4"); err != nil {
		return n, fmt.Errorf("hetzner: %w", err)
	}
	if n.IPv6, err = stringOutput(outputs, "ipv6"); err != nil {
		return n, fmt.Errorf("hetzner: %w", err)
	}
	raw, ok := outputs["server_id"]
	if !ok {
		return n, fmt.Errorf("hetzner: output %q missing", "server_id")
	}
	n.ServerID = strings.Trim(string(raw), `"`) // hcloud ids are numbers or numeric strings
	return n, nil
}

func shortID(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}
