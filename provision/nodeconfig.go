package provision

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/shardform/shardform/domain"
	"github.com/shardform/shardform/planner"
	"github.com/shardform/shardform/providers"
	"github.com/shardform/shardform/store"
)

// A node's size and firewall are its provision request's desired
// configuration: changing them changes the request and queues a plan run,
// whose apply (POST /v1/provision/{id}/apply, or at once with apply: true)
// makes the cloud match. The node's recorded capacity changes when the
// apply succeeds, not before.

// MaxFirewallRules is the most rules one node's firewall holds.
const MaxFirewallRules = 50

// ResizeRequest is the body of POST /v1/nodes/{id}/resize.
type ResizeRequest struct {
	InstanceType string `json:"instance_type"`
	// Apply applies the plan as soon as it has succeeded.
	Apply bool `json:"apply"`
}

// FirewallRule is one inbound rule of a node, as the API shows it.
type FirewallRule struct {
	ID          uuid.UUID `json:"id"`
	Direction   string    `json:"direction"`
	Protocol    string    `json:"protocol"`
	Port        string    `json:"port"`
	SourceIPs   []string  `json:"source_ips"`
	Description string    `json:"description"`
	CreatedAt   time.Time `json:"created_at"`
}

// RuleInput is the body of POST (and DELETE) /v1/nodes/{id}/firewall/rules.
type RuleInput struct {
	Direction   string   `json:"direction"`
	Protocol    string   `json:"protocol"`
	Port        string   `json:"port"`
	SourceIPs   []string `json:"source_ips"`
	Description string   `json:"description"`
}

// FirewallChange is a rule added or removed and the plan run it queued.
type FirewallChange struct {
	Rule FirewallRule `json:"rule"`
	Run  Run          `json:"run"`
}

func ruleView(r store.FirewallRule) FirewallRule {
	return FirewallRule{ID: r.ID, Direction: r.Direction, Protocol: r.Protocol, Port: ruleOf(r).Port(),
		SourceIPs: r.SourceIps, Description: r.Description, CreatedAt: r.CreatedAt}
}

func ruleOf(r store.FirewallRule) providers.FirewallRule {
	return providers.FirewallRule{Protocol: r.Protocol, PortLow: int(r.PortLow), PortHigh: int(r.PortHigh), SourceIPs: r.SourceIps, Description: r.Description}
}

// parseRule checks a rule: direction in, protocol tcp, udp or icmp, a port
// or range 1–65535 (low ≤ high) for tcp and udp and none for icmp, source
// CIDRs that parse (default: anywhere, IPv4 and IPv6).
func parseRule(in RuleInput) (providers.FirewallRule, error) {
	var r providers.FirewallRule
	if in.Direction != "" && in.Direction != "in" {
		return r, domain.Invalid("direction", "must be in (inbound rules only)")
	}
	switch in.Protocol {
	case "tcp", "udp", "icmp":
		r.Protocol = in.Protocol
	default:
		return r, domain.Invalid("protocol", "must be tcp, udp or icmp")
	}
	if r.Protocol == "icmp" {
		if in.Port != "" {
			return r, domain.Invalid("port", "must be empty for icmp")
		}
	} else {
		lo, hi, ok := strings.Cut(in.Port, "-")
		if !ok {
			hi = lo
		}
		l, err1 := strconv.Atoi(lo)
		h, err2 := strconv.Atoi(hi)
		if in.Port == "" || err1 != nil || err2 != nil || l < 1 || h > 65535 || l > h {
			return r, domain.Invalid("port", "must be a port (25565) or a range (27015-27030) from 1 to 65535, low ≤ high")
		}
		r.PortLow, r.PortHigh = l, h
	}
	if len(in.SourceIPs) == 0 {
		in.SourceIPs = []string{"0.0.0.0/0", "::/0"}
	}
	if len(in.SourceIPs) > 100 {
		return r, domain.Invalid("source_ips", "at most 100 CIDRs")
	}
	seen := map[string]bool{}
	for i, c := range in.SourceIPs {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			return r, domain.Invalid(fmt.Sprintf("source_ips[%d]", i), "must be a CIDR such as 203.0.113.0/24 or ::/0")
		}
		if p != p.Masked() {
			return r, domain.Invalid(fmt.Sprintf("source_ips[%d]", i), "must be a network address: %s", p.Masked())
		}
		if !seen[p.String()] {
			seen[p.String()] = true
			r.SourceIPs = append(r.SourceIPs, p.String())
		}
	}
	slices.Sort(r.SourceIPs)
	if err := domain.CheckText("description", in.Description, domain.MaxTextLength); err != nil {
		return r, err
	}
	r.Description = in.Description
	return r, nil
}

// nodeRequest locks a node's provision request for a change of its
// desired configuration (the request first, then the node, as a run's
// final transaction takes them) and checks that it can be planned.
func (s *Service) nodeRequest(ctx context.Context, tx pgx.Tx, p *domain.Principal, nodeID uuid.UUID) (store.ProvisionRequest, store.LockPlacementNodeRow, error) {
	n, err := s.q.GetNode(ctx, tx, store.GetNodeParams{OrganizationID: p.OrgID, ID: nodeID})
	if store.IsNoRows(err) {
		return store.ProvisionRequest{}, store.LockPlacementNodeRow{}, domain.NotFound("node")
	}
	if err != nil {
		return store.ProvisionRequest{}, store.LockPlacementNodeRow{}, fmt.Errorf("node %s: %w", nodeID, err)
	}
	if !n.ProvisionID.Valid {
		return store.ProvisionRequest{}, store.LockPlacementNodeRow{}, domain.Conflict("node %s was not made by a provision request: change it at its provider", n.Name)
	}
	r, err := s.q.GetProvisionRequestForUpdate(ctx, tx, store.GetProvisionRequestForUpdateParams{OrganizationID: p.OrgID, ID: n.ProvisionID.UUID})
	if err != nil {
		return store.ProvisionRequest{}, store.LockPlacementNodeRow{}, fmt.Errorf("node %s: %w", nodeID, err)
	}
	switch r.Status {
	case StatusApplied, StatusPlanned, StatusFailed:
	default:
		return store.ProvisionRequest{}, store.LockPlacementNodeRow{}, domain.Conflict("the node's provision request is %s: change its configuration once that run ends", r.Status)
	}
	locked, err := s.q.LockPlacementNode(ctx, tx, store.LockPlacementNodeParams{OrganizationID: p.OrgID, ID: nodeID})
	if err != nil {
		return store.ProvisionRequest{}, store.LockPlacementNodeRow{}, fmt.Errorf("node %s: %w", nodeID, err)
	}
	return r, locked, nil
}

// planChange queues the plan run of a changed configuration, in tx.
func (s *Service) planChange(ctx context.Context, tx pgx.Tx, p *domain.Principal, r store.ProvisionRequest) (Run, error) {
	run, err := s.newRunTx(ctx, tx, p, r, RunPlan)
	if err != nil {
		return Run{}, err
	}
	if err := s.q.SetProvisionStatus(ctx, tx, store.SetProvisionStatusParams{OrganizationID: r.OrganizationID, ID: r.ID, Status: StatusPlanning, Error: ""}); err != nil {
		return Run{}, fmt.Errorf("provision %s: %w", r.ID, err)
	}
	return s.runView(ctx, run), nil
}

// Resize changes the node's instance type in its provision request and
// queues a plan run (apply: its apply follows a successful plan). A type
// the driver does not offer is 400; a type too small for the instances
// placed on the node is 409 naming each short resource.
func (s *Service) Resize(ctx context.Context, p *domain.Principal, nodeID uuid.UUID, req ResizeRequest) (Run, error) {
	if err := need(p, domain.PermNodesWrite); err != nil {
		return Run{}, err
	}
	if s.queue == nil {
		return Run{}, fmt.Errorf("resize node %s: no job queue configured", nodeID)
	}
	var out Run
	err := s.st.InTx(ctx, func(tx pgx.Tx) error {
		r, n, err := s.nodeRequest(ctx, tx, p, nodeID)
		if err != nil {
			return err
		}
		d, ok := s.drivers.Get(r.Provider)
		if !ok {
			return domain.Conflict("provider %q is not configured on this server", r.Provider)
		}
		it, ok := providers.FindInstanceTypeIn(d, r.Region, req.InstanceType)
		if !ok {
			return domain.Invalid("instance_type", "must be one of the instance types %s offers in %s: %s", d.Name(), r.Region, providers.InstanceTypeNamesIn(d, r.Region))
		}
		if r.InstanceType == req.InstanceType {
			return domain.Conflict("node %s is already %s", n.Name, req.InstanceType)
		}
		if r.Provider == "hetzner" && it.DiskGB < int(n.DiskGb) {
			// Hetzner changes a server's type in place only while its disk
			// stays: it refuses to shrink a disk.
			return domain.Conflict("disk: node %s has a %d GB disk and %s has %d GB: Hetzner cannot shrink a server's disk (pick a type with at least %d GB)",
				n.Name, n.DiskGb, it.Name, it.DiskGB, n.DiskGb)
		}
		if short := resizeShortfall(n, it); len(short) > 0 {
			return domain.Conflict("node %s cannot become %s: its instances would not fit: %s", n.Name, it.Name, strings.Join(short, "; "))
		}
		if err := s.q.SetProvisionInstanceType(ctx, tx, store.SetProvisionInstanceTypeParams{OrganizationID: p.OrgID, ID: r.ID, InstanceType: it.Name}); err != nil {
			return fmt.Errorf("resize node %s: %w", nodeID, err)
		}
		if err := s.pendingSize(ctx, tx, p.OrgID, n.ID, it); err != nil {
			return fmt.Errorf("resize node %s: %w", nodeID, err)
		}
		r.InstanceType = it.Name
		if out, err = s.planChange(ctx, tx, p, r); err != nil {
			return err
		}
		if req.Apply {
			return s.q.SetRunAutoApply(ctx, tx, store.SetRunAutoApplyParams{OrganizationID: p.OrgID, ID: out.ID})
		}
		return nil
	})
	return out, err
}

// resizeShortfall names each resource the node's reservations would lack
// on instance type it (after the planner's overhead for the OS).
func resizeShortfall(n store.LockPlacementNodeRow, it providers.InstanceType) []string {
	raw := planner.Resources{MilliCPU: int64(it.VCPU) * 1000, MemoryMiB: int64(it.MemoryMB), DiskMiB: int64(it.DiskGB) * 1024}
	usable := planner.Usable(raw, planner.DefaultOverhead(), 0)
	var out []string
	if r := n.ReservedCpuMillis; r > usable.MilliCPU {
		out = append(out, fmt.Sprintf("cpu: the instances reserve %dm, %s offers %dm after the OS overhead", r, it.Name, usable.MilliCPU))
	}
	if r := n.ReservedMemoryMb; r > usable.MemoryMiB {
		out = append(out, fmt.Sprintf("memory: the instances reserve %d MiB, %s offers %d MiB after the OS overhead", r, it.Name, usable.MemoryMiB))
	}
	if r := n.ReservedDiskGb * 1024; r > usable.DiskMiB {
		out = append(out, fmt.Sprintf("disk: the instances reserve %d GiB, %s offers %d GiB after the OS overhead", r/1024, it.Name, usable.DiskMiB/1024))
	}
	return out
}

// FirewallRules lists a node's inbound rules.
func (s *Service) FirewallRules(ctx context.Context, p *domain.Principal, nodeID uuid.UUID) ([]FirewallRule, error) {
	if err := need(p, domain.PermNodesRead); err != nil {
		return nil, err
	}
	n, err := s.q.GetNode(ctx, s.st.Pool, store.GetNodeParams{OrganizationID: p.OrgID, ID: nodeID})
	if store.IsNoRows(err) {
		return nil, domain.NotFound("node")
	}
	if err != nil {
		return nil, fmt.Errorf("firewall of node %s: %w", nodeID, err)
	}
	if !n.ProvisionID.Valid {
		return nil, domain.Conflict("node %s was not made by a provision request: its firewall is its provider's", n.Name)
	}
	rows, err := s.q.ListFirewallRules(ctx, s.st.Pool, store.ListFirewallRulesParams{OrganizationID: p.OrgID, ProvisionID: n.ProvisionID.UUID})
	if err != nil {
		return nil, fmt.Errorf("firewall of node %s: %w", nodeID, err)
	}
	out := make([]FirewallRule, len(rows))
	for i, r := range rows {
		out[i] = ruleView(r)
	}
	return out, nil
}

// AddFirewallRule adds an inbound rule to the node's desired firewall and
// queues a plan run. A rule already there (same protocol, ports and
// sources) is 409.
func (s *Service) AddFirewallRule(ctx context.Context, p *domain.Principal, nodeID uuid.UUID, in RuleInput) (FirewallChange, error) {
	if err := need(p, domain.PermNodesWrite); err != nil {
		return FirewallChange{}, err
	}
	rule, err := parseRule(in)
	if err != nil {
		return FirewallChange{}, err
	}
	if s.queue == nil {
		return FirewallChange{}, fmt.Errorf("firewall of node %s: no job queue configured", nodeID)
	}
	var out FirewallChange
	err = s.st.InTx(ctx, func(tx pgx.Tx) error {
		r, _, err := s.nodeRequest(ctx, tx, p, nodeID)
		if err != nil {
			return err
		}
		n, err := s.q.CountFirewallRules(ctx, tx, store.CountFirewallRulesParams{OrganizationID: p.OrgID, ProvisionID: r.ID})
		if err != nil {
			return fmt.Errorf("firewall of node %s: %w", nodeID, err)
		}
		if n >= MaxFirewallRules {
			return domain.Invalid("rules", "a node's firewall holds at most %d rules", MaxFirewallRules)
		}
		row, err := s.q.InsertFirewallRule(ctx, tx, store.InsertFirewallRuleParams{OrganizationID: p.OrgID, ProvisionID: r.ID,
			Protocol: rule.Protocol, PortLow: int32(rule.PortLow), PortHigh: int32(rule.PortHigh), SourceIps: rule.SourceIPs, Description: rule.Description})
		if store.IsUniqueViolation(err) {
			return domain.Conflict("the node's firewall already has this rule (%s %s from %s)", rule.Protocol, rule.Port(), strings.Join(rule.SourceIPs, ", "))
		}
		if err != nil {
			return fmt.Errorf("firewall of node %s: %w", nodeID, err)
		}
		out.Rule = ruleView(row)
		out.Run, err = s.planChange(ctx, tx, p, r)
		return err
	})
	return out, err
}

// RemoveFirewallRule removes a rule (by id, or the one matching in) from
// the node's desired firewall and queues a plan run.
func (s *Service) RemoveFirewallRule(ctx context.Context, p *domain.Principal, nodeID uuid.UUID, ruleID uuid.UUID, in *RuleInput) (FirewallChange, error) {
	if err := need(p, domain.PermNodesWrite); err != nil {
		return FirewallChange{}, err
	}
	var match providers.FirewallRule
	if in != nil {
		var err error
		if match, err = parseRule(*in); err != nil {
			return FirewallChange{}, err
		}
	}
	if s.queue == nil {
		return FirewallChange{}, fmt.Errorf("firewall of node %s: no job queue configured", nodeID)
	}
	var out FirewallChange
	err := s.st.InTx(ctx, func(tx pgx.Tx) error {
		r, _, err := s.nodeRequest(ctx, tx, p, nodeID)
		if err != nil {
			return err
		}
		var row store.FirewallRule
		if in == nil {
			row, err = s.q.DeleteFirewallRule(ctx, tx, store.DeleteFirewallRuleParams{OrganizationID: p.OrgID, ProvisionID: r.ID, ID: ruleID})
		} else {
			row, err = s.q.DeleteFirewallRuleMatching(ctx, tx, store.DeleteFirewallRuleMatchingParams{OrganizationID: p.OrgID, ProvisionID: r.ID,
				Protocol: match.Protocol, PortLow: int32(match.PortLow), PortHigh: int32(match.PortHigh), SourceIps: match.SourceIPs})
		}
		if store.IsNoRows(err) {
			return domain.NotFound("firewall rule")
		}
		if err != nil {
			return fmt.Errorf("firewall of node %s: %w", nodeID, err)
		}
		out.Rule = ruleView(row)
		out.Run, err = s.planChange(ctx, tx, p, r)
		return err
	})
	return out, err
}

// render is the request's Terraform configuration: its stored desired
// state (size, image, keys, labels, firewall) through its driver.
func (s *Service) render(ctx context.Context, r store.ProvisionRequest, d providers.Driver) ([]byte, error) {
	var labels map[string]string
	if err := json.Unmarshal(r.Labels, &labels); err != nil {
		// Rendering without them would build a machine without its labels.
		return nil, fmt.Errorf("stored labels of provision request %s are unreadable: %w", r.ID, err)
	}
	rows, err := s.q.ListFirewallRules(ctx, s.st.Pool, store.ListFirewallRulesParams{OrganizationID: r.OrganizationID, ProvisionID: r.ID})
	if err != nil {
		return nil, fmt.Errorf("firewall of provision request %s: %w", r.ID, err)
	}
	rules := make([]providers.FirewallRule, len(rows))
	for i, row := range rows {
		rules[i] = ruleOf(row)
	}
	return d.Render(providers.Request{ID: r.ID.String(), Name: r.Name, Region: r.Region, InstanceType: r.InstanceType,
		Image: r.Image, SSHKeys: r.SshKeys, Labels: labels, Firewall: rules, Join: s.joinOf(d)})
}

// autoApply queues the apply of a plan run made with apply: true (after
// its own transaction: should this fail, the request stays planned and
// can be applied by hand).
func (s *Service) autoApply(ctx context.Context, a *active) {
	if !a.run.AutoApply {
		return
	}
	ctx = context.WithoutCancel(ctx)
	err := s.st.InTx(ctx, func(tx pgx.Tx) error {
		r, err := s.q.GetProvisionRequestForUpdate(ctx, tx, store.GetProvisionRequestForUpdateParams{OrganizationID: a.r.OrganizationID, ID: a.r.ID})
		if err != nil || r.Status != StatusPlanned {
			return err
		}
		if _, err := s.newRunTx(ctx, tx, nil, r, RunApply); err != nil {
			return err
		}
		return s.q.SetProvisionStatus(ctx, tx, store.SetProvisionStatusParams{OrganizationID: r.OrganizationID, ID: r.ID, Status: StatusApplying, Error: ""})
	})
	if err != nil {
		a.logs.Note("could not queue the apply that was asked to follow this plan: apply it with POST /v1/provision/" + a.r.ID.String() + "/apply")
		s.log.ErrorContext(ctx, "auto-apply after a plan failed", slog.String("provision_id", a.r.ID.String()), slog.Any("error", err))
	}
}
