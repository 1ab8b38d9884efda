package providers

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// Local is the driver for trying shardform and for tests: it uses only
// Terraform's built-in terraform_data resource and creates no machine. Its
// "node" answers on the loopback address.
type Local struct {
	// ApplyDelay makes apply take this long (a local-exec sleep), to
	// exercise cancellation and crash recovery.
	ApplyDelay time.Duration
}

// Name implements Driver.
func (Local) Name() string { return "local" }

// Regions implements Driver.
func (Local) Regions() []Region {
	return []Region{{Name: "local", Description: "this machine (no real node is created)"}}
}

// InstanceTypes implements Driver.
func (Local) InstanceTypes() []InstanceType {
	return []InstanceType{
		{Name: "local-small", VCPU: 1, MemoryMB: 1024, DiskGB: 10, MonthlyPrice: "0.00", Currency: "EUR"},
		{Name: "local-medium", VCPU: 2, MemoryMB: 4096, DiskGB: 40, MonthlyPrice: "0.00", Currency: "EUR"},
		{Name: "local-large", VCPU: 4, MemoryMB: 8192, DiskGB: 80, MonthlyPrice: "0.00", Currency: "EUR"},
	}
}

// tfConfig is the subset of Terraform JSON the drivers render.
type tfConfig struct {
	Terraform map[string]any `json:"terraform"`
	Variable  map[string]any `json:"variable,omitempty"`
	Provider  map[string]any `json:"provider,omitempty"`
	Data      map[string]any `json:"data,omitempty"`
	Resource  map[string]any `json:"resource,omitempty"`
	Output    map[string]any `json:"output"`
}

// marshal renders the configuration as indented JSON, without HTML
// escaping (Terraform reads "~>" better than "\u003e").
func (c tfConfig) marshal(driver string) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(c); err != nil {
		return nil, fmt.Errorf("%s: render: %w", driver, err)
	}
	return buf.Bytes(), nil
}

// stateBackend is the backend every driver's configuration declares:
// Terraform's http backend, served by shardform (package tfstate); where
// it is and the run's credential come in the run's environment.
func stateBackend() map[string]any {
	return map[string]any{"backend": map[string]any{"http": map[string]any{}}}
}

// Render implements Driver. Every user string is a JSON value: Terraform
// JSON treats "${...}" in values as template syntax, so user strings are
// escaped ("$${" and "%%{") before they are placed.
func (l Local) Render(req Request) ([]byte, error) {
	node := map[string]any{
		"input": map[string]any{
			"name":          escape(req.Name),
			"region":        escape(req.Region),
			"instance_type": escape(req.InstanceType),
			"labels":        escapeMap(req.Labels),
			"firewall":      localRules(req.firewall()),
		},
	}
	if l.ApplyDelay > 0 {
		node["provisioner"] = []any{map[string]any{"local-exec": map[string]any{
			"command": fmt.Sprintf("sleep %d", int(l.ApplyDelay.Seconds())),
		}}}
	}
	cfg := tfConfig{
		Terraform: stateBackend(),
		Resource:  map[string]any{"terraform_data": map[string]any{"node": node}},
		Output: map[string]any{
			"server_id": map[string]any{"value": "${terraform_data.node.id}"},
			"ipv4":      map[string]any{"value": "127.0.0.1"},
			"ipv6":      map[string]any{"value": "::1"},
		},
	}
	return cfg.marshal("local")
}

// localRules put the firewall in the terraform_data input, so a rule
// change shows in the plan as an update (nothing enforces them).
func localRules(rules []FirewallRule) []any {
	out := make([]any, 0, len(rules))
	for _, r := range rules {
		out = append(out, map[string]any{"protocol": escape(r.Protocol), "port": r.Port(), "source_ips": escapeList(r.SourceIPs), "description": escape(r.Description)})
	}
	return out
}

// Node implements Driver.
func (Local) Node(outputs map[string]json.RawMessage) (Node, error) {
	var n Node
	var err error
	if n.ServerID, err = stringOutput(outputs, "server_id"); err != nil {
		return n, fmt.Errorf("local: %w", err)
	}
	if n.IPv4, err = stringOutput(outputs, "ipv4"); err != nil {
		return n, fmt.Errorf("local: %w", err)
	}
	if n.IPv6, err = stringOutput(outputs, "ipv6"); err != nil {
		return n, fmt.Errorf("local: %w", err)
	}
	return n, nil
}
