package providers_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shardform/shardform/planner"
	"github.com/shardform/shardform/providers"
)

func hetzner(t *testing.T) *providers.Hetzner {
	t.Helper()
	cat, err := planner.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	return providers.NewHetzner(cat, time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC))
}

func TestHetznerCatalog(t *testing.T) {
	t.Parallel()
	h := hetzner(t)
	for _, region := range []string{"fsn1", "nbg1", "hel1"} {
		if !providers.HasRegion(h, region) {
			t.Errorf("region %s missing", region)
		}
	}
	it, ok := providers.FindInstanceType(h, "cx23")
	if !ok || it.VCPU != 2 || it.MemoryMB != 4096 || it.MonthlyPrice == "" {
		t.Errorf("cx23 = %+v, %v", it, ok)
	}
	// Types no longer orderable (the 2025 deprecations) are not offered.
	if _, ok := providers.FindInstanceType(h, "cx22"); ok {
		t.Error("deprecated, unavailable cx22 is offered")
	}
}

func TestHetznerRender(t *testing.T) {
	t.Parallel()
	h := hetzner(t)
	req := providers.Request{ID: "0b7e2c4a-1111-2222-3333-444455556666", Name: "mc-1", Region: "fsn1", InstanceType: "cx33",
		SSHKeys: []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx0c2hhcmRmb3JtdGVzdGtleWZvcmdvbGRlbmZpbGU ops@example.com"},
		Labels:  map[string]string{"game": "minecraft", "evil": "${var.hcloud_token}"}}
	got, err := h.Render(req)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "hetzner-server.tf.json", got)
	req.InstanceType, req.Firewall = "cx43", testRules
	resized, err := h.Render(req)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "hetzner-firewall.tf.json", resized)
	if strings.Contains(string(got), `"token": "`) && !strings.Contains(string(got), `"token": "${var.hcloud_token}"`) {
		t.Error("a token value is written into the configuration")
	}
	if !strings.Contains(string(got), `"evil": "$${var.hcloud_token}"`) {
		t.Error("a label can reference the token variable")
	}
}

// hcloudSchema lists the arguments the hetznercloud/hcloud provider
// documents for the resources the driver renders (registry docs, v1.49+).
var hcloudSchema = map[string][]string{
	"hcloud_server": {"name", "server_type", "image", "location", "datacenter", "user_data", "ssh_keys", "public_net", "keep_disk",
		"iso", "rescue", "labels", "backups", "firewall_ids", "ignore_remote_firewall_ids", "network", "placement_group_id",
		"delete_protection", "rebuild_protection", "allow_deprecated_images", "shutdown_before_deletion"},
	"hcloud_ssh_key":  {"name", "public_key", "labels"},
	"hcloud_firewall": {"name", "labels", "rule", "apply_to"},
	"rule":            {"direction", "protocol", "port", "source_ips", "destination_ips", "description"},
	"public_net":      {"ipv4_enabled", "ipv4", "ipv6_enabled", "ipv6"},
}

func TestHetznerRenderMatchesProviderSchema(t *testing.T) {
	t.Parallel()
	h := hetzner(t)
	got, err := h.Render(providers.Request{ID: "p1", Name: "x", Region: "nbg1", InstanceType: "cx23",
		SSHKeys: []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx0c2hhcmRmb3JtdGVzdGtleWZvcmdvbGRlbmZpbGU"}})
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Resource map[string]map[string]map[string]any `json:"resource"`
		Provider map[string]map[string]any            `json:"provider"`
	}
	if err := json.Unmarshal(got, &cfg); err != nil {
		t.Fatal(err)
	}
	var check func(kind string, attrs map[string]any)
	check = func(kind string, attrs map[string]any) {
		allowed, ok := hcloudSchema[kind]
		if !ok {
			t.Fatalf("resource type %s is not in the documented schema", kind)
		}
		for k, v := range attrs {
			if !slices.Contains(allowed, k) {
				t.Errorf("%s.%s is not a documented argument", kind, k)
			}
			if blocks, ok := v.([]any); ok && (k == "rule" || k == "public_net") {
				for _, b := range blocks {
					check(k, b.(map[string]any))
				}
			}
		}
	}
	for kind, byName := range cfg.Resource {
		for _, attrs := range byName {
			check(kind, attrs)
		}
	}
	for _, required := range []string{"name", "server_type", "image", "location"} {
		if _, ok := cfg.Resource["hcloud_server"]["node"][required]; !ok {
			t.Errorf("hcloud_server lacks %s", required)
		}
	}
	if tok := cfg.Provider["hcloud"]["token"]; tok != "${var.hcloud_token}" {
		t.Errorf("provider token = %v", tok)
	}
}

func TestHetznerNode(t *testing.T) {
	t.Parallel()
	n, err := hetzner(t).Node(map[string]json.RawMessage{"server_id": json.RawMessage(`"4711"`), "ipv4": json.RawMessage(`"203.0.113.7"`), "ipv6": json.RawMessage(`"2001:db8::1"`)})
	if err != nil || n.ServerID != "4711" || n.IPv4 != "203.0.113.7" || n.IPv6 != "2001:db8::1" {
		t.Fatalf("node %+v, %v", n, err)
	}
	if _, err := hetzner(t).Node(map[string]json.RawMessage{"ipv4": json.RawMessage(`"x"`)}); err == nil {
		t.Error("missing outputs accepted")
	}
}

// TestInstanceTypesByRegion: a type is offered only where the catalog
// sells it: Hetzner's cx and cax in the EU locations only, its cpx and ccx
// also in ash (sold there, unpriced in the snapshot); aws types in each of its regions; local's
// in its one region.
func TestInstanceTypesByRegion(t *testing.T) {
	t.Parallel()
	h := hetzner(t)
	if _, ok := providers.FindInstanceTypeIn(h, "fsn1", "cx23"); !ok {
		t.Error("cx23 is not offered in fsn1")
	}
	if _, ok := providers.FindInstanceTypeIn(h, "fsn1", "cax11"); !ok {
		t.Error("cax11 is not offered in fsn1")
	}
	if !providers.HasRegion(h, "ash") {
		t.Fatal("ash is not a hetzner region")
	}
	for _, name := range []string{"cx23", "cax11"} {
		if _, ok := providers.FindInstanceTypeIn(h, "ash", name); ok {
			t.Errorf("%s is offered in ash", name)
		}
	}
	for _, name := range []string{"cpx22", "ccx13"} {
		if _, ok := providers.FindInstanceTypeIn(h, "ash", name); !ok {
			t.Errorf("%s is not offered in ash", name)
		}
	}
	for _, name := range strings.Split(providers.InstanceTypeNamesIn(h, "ash"), ", ") {
		if !strings.HasPrefix(name, "cpx") && !strings.HasPrefix(name, "ccx") || name == "cpx11" {
			t.Errorf("ash offers %s (only cpx and ccx are sold there; cpx11 no longer)", name)
		}
	}
	if got := providers.InstanceTypeNamesIn(h, "nbg1"); !strings.Contains(got, "cx23") || !strings.Contains(got, "ccx13") {
		t.Errorf("types in nbg1: %q", got)
	}
	if _, ok := providers.FindInstanceTypeIn(h, "fsn1", "cx22"); ok {
		t.Error("deprecated, unavailable cx22 is offered in fsn1")
	}
	cat, err := planner.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	a := providers.NewAWS(cat, time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC))
	if _, ok := providers.FindInstanceTypeIn(a, "eu-west-1", "t3.small"); !ok {
		t.Error("t3.small is not offered in eu-west-1")
	}
	if _, ok := providers.FindInstanceTypeIn(a, "fsn1", "t3.small"); ok {
		t.Error("aws offers t3.small in fsn1")
	}
	if _, ok := providers.FindInstanceTypeIn(providers.Local{}, "local", "local-small"); !ok {
		t.Error("local-small is not offered in local")
	}
	if _, ok := providers.FindInstanceTypeIn(providers.Local{}, "elsewhere", "local-small"); ok {
		t.Error("local offers local-small outside its region")
	}
}
