// Package providers holds one driver per cloud. A driver renders a
// provision request as Terraform JSON (user strings are values, never
// spliced into HCL), lists its regions and instance types, and turns
// Terraform outputs into a node.
package providers

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Region is a place a driver can create nodes in.
type Region struct {
	Name        string `json:"name"`
	Description string `json:"description"`
}

// InstanceType is a node size.
type InstanceType struct {
	Name     string `json:"name"`
	VCPU     int    `json:"vcpu"`
	MemoryMB int    `json:"memory_mb"`
	DiskGB   int    `json:"disk_gb"`
	// MonthlyPrice is a decimal string in Currency, empty when unknown.
	MonthlyPrice string `json:"monthly_price,omitempty"`
	Currency     string `json:"currency,omitempty"`
}

// Request is what to create.
type Request struct {
	ID           string            // provision request id (names the Terraform workspace)
	Name         string            // node name, a DNS label
	Region       string            // one of the driver's regions
	InstanceType string            // one of the driver's instance types
	Image        string            // driver-specific; empty: the driver's default
	SSHKeys      []string          // authorized_keys lines
	Labels       map[string]string // user labels
	// Firewall is the node's inbound rules; nil: DefaultFirewall (SSH and
	// ping), an empty list: none.
	Firewall []FirewallRule
	// Join, when set, makes the node join by itself (cloud-init runs the
	// bootstrap with the token of RegistrationTokenVariable). Drivers
	// without cloud-init ignore it.
	Join *Join
}

// FirewallRule lets traffic in: tcp or udp on a port range, or icmp
// (ping: ICMP echo request, and ICMPv6's for IPv6 sources), from the
// source CIDRs.
type FirewallRule struct {
	Protocol    string   // tcp, udp or icmp
	PortLow     int      // tcp and udp: 1-65535; icmp: 0
	PortHigh    int      // ≥ PortLow; icmp: 0
	SourceIPs   []string // CIDRs, IPv4 and IPv6
	Description string
}

// Port is the rule's port as the API and hcloud write it: "22" or
// "27015-27030"; "" for icmp.
func (r FirewallRule) Port() string {
	switch {
	case r.Protocol == "icmp":
		return ""
	case r.PortLow == r.PortHigh:
		return fmt.Sprint(r.PortLow)
	}
	return fmt.Sprintf("%d-%d", r.PortLow, r.PortHigh)
}

// SplitSources are the rule's IPv4 and IPv6 CIDRs.
func (r FirewallRule) SplitSources() (v4, v6 []string) {
	v4, v6 = []string{}, []string{}
	for _, c := range r.SourceIPs {
		if strings.Contains(c, ":") {
			v6 = append(v6, c)
		} else {
			v4 = append(v4, c)
		}
	}
	return v4, v6
}

// DefaultFirewall is a node's rules until someone changes them: SSH and
// ping from anywhere.
func DefaultFirewall() []FirewallRule {
	return []FirewallRule{
		{Protocol: "tcp", PortLow: 22, PortHigh: 22, SourceIPs: []string{"0.0.0.0/0", "::/0"}, Description: "ssh"},
		{Protocol: "icmp", SourceIPs: []string{"0.0.0.0/0", "::/0"}, Description: "ping"},
	}
}

// firewall is req's rules (the defaults when none were given).
func (req Request) firewall() []FirewallRule {
	if req.Firewall == nil {
		return DefaultFirewall()
	}
	return req.Firewall
}

// Node is what Terraform created, as read from its outputs.
type Node struct {
	ServerID string `json:"server_id"`
	IPv4     string `json:"ipv4"`
	IPv6     string `json:"ipv6"`
}

// Driver is one cloud.
type Driver interface {
	Name() string
	Regions() []Region
	InstanceTypes() []InstanceType
	// Render returns the Terraform JSON configuration of req.
	Render(req Request) ([]byte, error)
	// Node reads the node from the applied configuration's outputs.
	Node(outputs map[string]json.RawMessage) (Node, error)
}

// Credentialed is implemented by drivers that need a cloud credential to
// run: the credential provider they take ("hetzner", "aws") and the
// sensitive Terraform variables made from a credential's secret fields.
// The variables are passed at run time (an auto-loaded var file removed
// after the command), never written into the rendered configuration.
type Credentialed interface {
	CredentialProvider() string
	Variables(secret map[string]string) map[string]string
}

// Registry is the set of drivers a deployment offers.
type Registry struct {
	drivers map[string]Driver
}

// NewRegistry builds a registry of drivers.
func NewRegistry(drivers ...Driver) *Registry {
	r := &Registry{drivers: map[string]Driver{}}
	for _, d := range drivers {
		r.drivers[d.Name()] = d
	}
	return r
}

// Get returns the named driver.
func (r *Registry) Get(name string) (Driver, bool) {
	d, ok := r.drivers[name]
	return d, ok
}

// Names lists the drivers, sorted.
func (r *Registry) Names() []string {
	names := make([]string, 0, len(r.drivers))
	for n := range r.drivers {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// FindInstanceType looks up an instance type of d.
func FindInstanceType(d Driver, name string) (InstanceType, bool) {
	i := slices.IndexFunc(d.InstanceTypes(), func(t InstanceType) bool { return t.Name == name })
	if i < 0 {
		return InstanceType{}, false
	}
	return d.InstanceTypes()[i], true
}

// RegionalTypes is implemented by drivers whose catalog sells some types
// only in some regions (Hetzner's cx and cax only in its EU locations): the
// types d offers in region. A driver without it offers every type in each
// of its regions.
type RegionalTypes interface {
	InstanceTypesIn(region string) []InstanceType
}

// InstanceTypesIn lists the instance types d offers in region.
func InstanceTypesIn(d Driver, region string) []InstanceType {
	if rt, ok := d.(RegionalTypes); ok {
		return rt.InstanceTypesIn(region)
	}
	if !HasRegion(d, region) {
		return nil
	}
	return d.InstanceTypes()
}

// FindInstanceTypeIn looks up an instance type d offers in region.
func FindInstanceTypeIn(d Driver, region, name string) (InstanceType, bool) {
	types := InstanceTypesIn(d, region)
	i := slices.IndexFunc(types, func(t InstanceType) bool { return t.Name == name })
	if i < 0 {
		return InstanceType{}, false
	}
	return types[i], true
}

// InstanceTypeNamesIn lists the types d offers in region, comma-separated
// ("none" when the catalog sells none there).
func InstanceTypeNamesIn(d Driver, region string) string {
	var names []string
	for _, t := range InstanceTypesIn(d, region) {
		names = append(names, t.Name)
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// addInRegion records that region sells the type name.
func addInRegion(in map[string]map[string]bool, region, name string) {
	if in[region] == nil {
		in[region] = map[string]bool{}
	}
	in[region][name] = true
}

// typesIn is the types whose names are in names, in types' order.
func typesIn(types []InstanceType, names map[string]bool) []InstanceType {
	var out []InstanceType
	for _, t := range types {
		if names[t.Name] {
			out = append(out, t)
		}
	}
	return out
}

// HasRegion reports whether d offers the region.
func HasRegion(d Driver, name string) bool {
	return slices.ContainsFunc(d.Regions(), func(r Region) bool { return r.Name == name })
}

// RegionNames and InstanceTypeNames list valid values for error messages.
func RegionNames(d Driver) string {
	var names []string
	for _, r := range d.Regions() {
		names = append(names, r.Name)
	}
	return strings.Join(names, ", ")
}

// InstanceTypeNames lists d's instance types, comma-separated.
func InstanceTypeNames(d Driver) string {
	var names []string
	for _, t := range d.InstanceTypes() {
		names = append(names, t.Name)
	}
	return strings.Join(names, ", ")
}

// stringOutput reads a string output.
func stringOutput(outputs map[string]json.RawMessage, name string) (string, error) {
	raw, ok := outputs[name]
	if !ok {
		return "", fmt.Errorf("output %q missing", name)
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("output %q is not a string: %w", name, err)
	}
	return s, nil
}
