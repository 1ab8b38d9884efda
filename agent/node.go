package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/shardform/shardform/domain"
	"github.com/shardform/shardform/store"
)

// Node is the agent's own node record.
func (s *Service) Node(ctx context.Context, a Agent) (NodeRecord, error) {
	n, err := s.q.GetNode(ctx, s.st.Pool, store.GetNodeParams{OrganizationID: a.OrganizationID, ID: a.NodeID})
	if store.IsNoRows(err) {
		return NodeRecord{}, domain.Unauthenticated("invalid or revoked agent token (was the node deleted?)")
	}
	if err != nil {
		return NodeRecord{}, fmt.Errorf("agent node %s: %w", a.NodeID, err)
	}
	return nodeRecord(n), nil
}

// UserCAKeys is the organization's TrustedUserCAKeys file.
func (s *Service) UserCAKeys(ctx context.Context, a Agent) ([]byte, error) {
	text, err := s.ca.TrustedCAKeys(ctx, a.OrganizationID)
	return []byte(text), err
}

// KRL is the organization's key revocation list (sshd's RevokedKeys).
func (s *Service) KRL(ctx context.Context, a Agent) ([]byte, error) {
	return s.ca.KRL(ctx, a.OrganizationID)
}

// KnownHosts is the organization's @cert-authority lines.
func (s *Service) KnownHosts(ctx context.Context, a Agent) ([]byte, error) {
	text, err := s.ca.KnownHosts(ctx, a.OrganizationID)
	return []byte(text), err
}

// RenewRequest is the body of POST /v1/agent/host-certificates.
type RenewRequest struct {
	HostPublicKeys []string `json:"host_public_keys"`
}

// Renewal is its answer.
type Renewal struct {
	HostCertificates []HostCertificate `json:"host_certificates"`
	Warnings         []string          `json:"warnings"`
}

// RenewHostCertificates signs the node's host keys again (principals: the
// node's name and addresses). Only keys the node registered with are
// signed: the keys are pinned at registration (as ssh's known_hosts pins
// them on first use), so a stolen agent token cannot get a host
// certificate for another machine's key. A node whose host keys changed
// joins again with a registration token.
func (s *Service) RenewHostCertificates(ctx context.Context, a Agent, req RenewRequest) (Renewal, error) {
	keys, err := hostKeys("host_public_keys", req.HostPublicKeys)
	if err != nil {
		return Renewal{}, err
	}
	ag, err := s.q.GetNodeAgent(ctx, s.st.Pool, store.GetNodeAgentParams{OrganizationID: a.OrganizationID, NodeID: a.NodeID})
	if err != nil {
		return Renewal{}, fmt.Errorf("renew host certificates: %w", err)
	}
	for i, k := range keys {
		if !slices.Contains(ag.HostPublicKeys, k) {
			return Renewal{}, domain.Forbidden("host_public_keys[%d]: not a host key this node registered with (keys are pinned at registration); a machine whose host keys changed joins again with a registration token (shardform node join)", i)
		}
	}
	certs, warnings := s.signAll(ctx, a.OrganizationID, a.NodeID, keys)
	if len(certs) == 0 {
		return Renewal{}, domain.Unavailable("no host certificate could be signed: %v", warnings)
	}
	return Renewal{HostCertificates: certs, Warnings: warnings}, nil
}

// Heartbeat is the body of POST /v1/agent/heartbeat.
type Heartbeat struct {
	Version   string          `json:"version"`
	Inventory json.RawMessage `json:"inventory"`
}

// HeartbeatAnswer tells the agent when to come back.
type HeartbeatAnswer struct {
	NodeID                   uuid.UUID `json:"node_id"`
	LastSeenAt               time.Time `json:"last_seen_at"`
	HeartbeatIntervalSeconds int       `json:"heartbeat_interval_seconds"`
	// ETags are the current ETags of the trust files (user_ca, krl): a
	// node that has them needs not fetch them.
	ETags map[string]string `json:"etags"`
	// HostPrincipals are the principals the node's host certificates
	// carry when signed now (its name, DNS names and addresses): an agent
	// whose certificate names others renews it (a power cycle gave the
	// node a new address).
	HostPrincipals []string `json:"host_principals"`
}

// MaxInventoryBytes bounds one heartbeat's inventory.
const MaxInventoryBytes = 256 << 10

// RecordHeartbeat notes that the node is alive, with its inventory.
func (s *Service) RecordHeartbeat(ctx context.Context, a Agent, hb Heartbeat) (HeartbeatAnswer, error) {
	if err := domain.CheckText("version", hb.Version, 200); err != nil {
		return HeartbeatAnswer{}, err
	}
	inv := []byte("null")
	if len(hb.Inventory) > 0 {
		if len(hb.Inventory) > MaxInventoryBytes {
			return HeartbeatAnswer{}, domain.Invalid("inventory", "must be at most %d bytes", MaxInventoryBytes)
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(hb.Inventory, &obj); err != nil {
			return HeartbeatAnswer{}, domain.Invalid("inventory", "must be a JSON object")
		}
		inv = hb.Inventory
	}
	row, err := s.q.RecordHeartbeat(ctx, s.st.Pool, store.RecordHeartbeatParams{
		Now: s.now(), Version: hb.Version, Inventory: inv, OrganizationID: a.OrganizationID, NodeID: a.NodeID})
	if store.IsNoRows(err) {
		return HeartbeatAnswer{}, domain.Unauthenticated("invalid or revoked agent token (was the node deleted?)")
	}
	if err != nil {
		return HeartbeatAnswer{}, fmt.Errorf("heartbeat of node %s: %w", a.NodeID, err)
	}
	// Heard from again: an unreachable node is ready.
	if err := s.q.MarkNodeReachable(ctx, s.st.Pool, store.MarkNodeReachableParams{OrganizationID: a.OrganizationID, ID: a.NodeID}); err != nil {
		return HeartbeatAnswer{}, fmt.Errorf("heartbeat of node %s: %w", a.NodeID, err)
	}
	etags, err := s.trustETags(ctx, a)
	if err != nil {
		return HeartbeatAnswer{}, err
	}
	principals, err := s.ca.HostPrincipals(ctx, a.OrganizationID, a.NodeID)
	if err != nil {
		return HeartbeatAnswer{}, fmt.Errorf("heartbeat of node %s: %w", a.NodeID, err)
	}
	out := HeartbeatAnswer{NodeID: row.NodeID, HeartbeatIntervalSeconds: int(s.opts.HeartbeatInterval / time.Second), ETags: etags, HostPrincipals: principals}
	if row.LastSeenAt != nil {
		out.LastSeenAt = *row.LastSeenAt
	}
	return out, nil
}

// RotatedToken is the answer to POST /v1/agent/token/rotate.
type RotatedToken struct {
	AgentToken string `json:"agent_token"`
}

// RotateToken replaces the agent's token: the old one stops working at once.
func (s *Service) RotateToken(ctx context.Context, a Agent) (RotatedToken, error) {
	secret, hash, err := newSecret(AgentTokenPrefix)
	if err != nil {
		return RotatedToken{}, err
	}
	n, err := s.q.RotateAgentToken(ctx, s.st.Pool, store.RotateAgentTokenParams{
		TokenHash: hash, DisplayPrefix: displayPrefix(secret, AgentTokenPrefix), Now: s.now(),
		OrganizationID: a.OrganizationID, NodeID: a.NodeID})
	if err != nil {
		return RotatedToken{}, fmt.Errorf("rotate agent token of node %s: %w", a.NodeID, err)
	}
	if n == 0 {
		return RotatedToken{}, domain.Unauthenticated("invalid or revoked agent token (was the node deleted?)")
	}
	return RotatedToken{AgentToken: secret}, nil
}

// AgentInfo is a node's agent as GET /v1/admin/agents lists it.
type AgentInfo struct {
	NodeID       uuid.UUID  `json:"node_id"`
	NodeName     string     `json:"node_name"`
	Provider     string     `json:"provider"`
	Status       string     `json:"status"`
	Hostname     string     `json:"hostname"`
	Version      string     `json:"version"`
	TokenPrefix  string     `json:"token_prefix"`
	RegisteredAt time.Time  `json:"registered_at"`
	RotatedAt    *time.Time `json:"rotated_at"`
	LastSeenAt   *time.Time `json:"last_seen_at"`
}

// ListAgents lists the organization's nodes that have an agent (nodes:read).
func (s *Service) ListAgents(ctx context.Context, p *domain.Principal, page domain.Page) ([]AgentInfo, int64, error) {
	if err := need(p, domain.PermNodesRead); err != nil {
		return nil, 0, err
	}
	total, err := s.q.CountNodeAgents(ctx, s.st.Pool, p.OrgID)
	if err != nil {
		return nil, 0, fmt.Errorf("count agents: %w", err)
	}
	rows, err := s.q.ListNodeAgents(ctx, s.st.Pool, store.ListNodeAgentsParams{OrganizationID: p.OrgID, Lim: page.Limit, Off: page.Offset()})
	if err != nil {
		return nil, 0, fmt.Errorf("list agents: %w", err)
	}
	out := make([]AgentInfo, len(rows))
	for i, r := range rows {
		out[i] = AgentInfo{NodeID: r.NodeID, NodeName: r.NodeName, Provider: r.Provider, Status: r.Status, Hostname: r.Hostname,
			Version: r.Version, TokenPrefix: r.DisplayPrefix, RegisteredAt: r.RegisteredAt, RotatedAt: r.RotatedAt, LastSeenAt: r.LastSeenAt}
	}
	return out, total, nil
}

// Inventory is the node's latest inventory, whole or one part of it.
type Inventory struct {
	NodeID     uuid.UUID                  `json:"node_id"`
	ReportedAt *time.Time                 `json:"reported_at"`
	Version    string                     `json:"version"`
	Inventory  map[string]json.RawMessage `json:"inventory"`
}

// NodeInventory answers the inventory of the node's latest heartbeat
// (nodes:read); part, when set, is one of system, network, disks. A node
// without an agent is 404 naming why.
func (s *Service) NodeInventory(ctx context.Context, p *domain.Principal, nodeID uuid.UUID, part string) (Inventory, error) {
	if err := need(p, domain.PermNodesRead); err != nil {
		return Inventory{}, err
	}
	row, err := s.q.GetNodeInventory(ctx, s.st.Pool, store.GetNodeInventoryParams{OrganizationID: p.OrgID, NodeID: nodeID})
	if store.IsNoRows(err) {
		exists, eerr := s.q.NodeExists(ctx, s.st.Pool, store.NodeExistsParams{OrganizationID: p.OrgID, ID: nodeID})
		if eerr == nil && exists {
			return Inventory{}, domain.NotFound("inventory (the node has no agent: shardform node join)")
		}
		return Inventory{}, domain.NotFound("node")
	}
	if err != nil {
		return Inventory{}, fmt.Errorf("inventory of node %s: %w", nodeID, err)
	}
	all := map[string]json.RawMessage{}
	if err := json.Unmarshal(row.Inventory, &all); err != nil || all == nil {
		all = map[string]json.RawMessage{}
	}
	out := Inventory{NodeID: row.NodeID, ReportedAt: row.LastSeenAt, Version: row.Version, Inventory: all}
	if part != "" {
		v, ok := all[part]
		if !ok {
			v = json.RawMessage("null")
		}
		out.Inventory = map[string]json.RawMessage{part: v}
	}
	return out, nil
}
