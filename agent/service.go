// Package agent makes nodes born trusted: registration tokens (minted by
// people with nodes:write), the one registration that exchanges such a token
// for a node and its per-node agent token, and what that agent token may do
// afterwards (its CA files, KRL and known-hosts, host certificate renewals,
// heartbeats with inventory, its own node record) — nothing else.
package agent

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/shardform/shardform/domain"
	"github.com/shardform/shardform/sshsign"
	"github.com/shardform/shardform/store"
)

// Token prefixes: a registration token is spent on registering; an agent
// token is a node's identity afterwards.
const (
	RegistrationTokenPrefix = "shardform_reg_"
	AgentTokenPrefix        = "shardform_agent_"
)

// Registration token lifetimes and uses.
const (
	DefaultTokenTTL = time.Hour
	MaxTokenTTL     = 7 * 24 * time.Hour
	MinTokenTTL     = time.Minute
	MaxTokenUses    = 1000
)

// Default paths on a node, which node join writes (under --root) and the
// sshd settings name.
const (
	UserCAPath     = "/etc/ssh/shardform_user_ca.pub"
	RevokedKeyPath = "/etc/ssh/shardform_revoked.krl"
)

// CA is what the service needs of the SSH certificate authority
// (sshsign.Service).
type CA interface {
	SignNodeHost(ctx context.Context, org, nodeID uuid.UUID, publicKey string, validityHours *int) (sshsign.HostSigned, error)
	TrustedCAKeys(ctx context.Context, org uuid.UUID) (string, error)
	KnownHosts(ctx context.Context, org uuid.UUID) (string, error)
	KRL(ctx context.Context, org uuid.UUID) ([]byte, error)
	HostPrincipals(ctx context.Context, org, nodeID uuid.UUID) ([]string, error)
}

// DNS gives a node its auto-DNS records (dns.Service, as for the nodes an
// apply registers): called inside the registration's transaction, so a
// node's records are queued with the node or not at all.
type DNS interface {
	NodeRegistered(ctx context.Context, tx pgx.Tx, n store.Node) error
}

// Options tune a Service.
type Options struct {
	Now func() time.Time // default time.Now
	// HostValidityHours is how long the host certificates handed to
	// agents are valid (nil: the CA's default).
	HostValidityHours *int
	// HeartbeatInterval is how often agents are told to send heartbeats
	// (default one minute).
	HeartbeatInterval time.Duration
}

// Service is the agents' domain service.
type Service struct {
	st   *store.Store
	q    *store.Queries
	ca   CA
	dns  DNS
	now  func() time.Time
	opts Options
}

// UseDNS turns auto-DNS on for the nodes that register: a machine brought
// with node join gets its name (and its host certificate the fqdn) as a
// provisioned node does.
func (s *Service) UseDNS(d DNS) { s.dns = d }

// New returns the service.
func New(st *store.Store, ca CA, opts Options) *Service {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.HeartbeatInterval <= 0 {
		opts.HeartbeatInterval = time.Minute
	}
	return &Service{st: st, q: store.New(), ca: ca, now: opts.Now, opts: opts}
}

// Agent is a node authenticated by its agent token.
type Agent struct {
	NodeID         uuid.UUID
	OrganizationID uuid.UUID
	NodeName       string
}

func newSecret(prefix string) (secret string, hash []byte, err error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", nil, fmt.Errorf("generate secret: %w", err)
	}
	secret = prefix + base64.RawURLEncoding.EncodeToString(b)
	return secret, hashSecret(secret), nil
}

// hashSecret hashes a high-entropy token for storage and lookup (no salt or
// slow hash: it cannot be guessed).
func hashSecret(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

func displayPrefix(secret, prefix string) string { return secret[:len(prefix)+6] }

// Authenticate resolves an agent token (X-Agent-Token). A token of a deleted
// node, a rotated-out token or anything else is unauthenticated.
func (s *Service) Authenticate(ctx context.Context, token string) (Agent, error) {
	if token == "" {
		return Agent{}, domain.Unauthenticated("missing agent token: send X-Agent-Token")
	}
	if len(token) <= len(AgentTokenPrefix) || token[:len(AgentTokenPrefix)] != AgentTokenPrefix {
		return Agent{}, domain.Unauthenticated("invalid agent token")
	}
	row, err := s.q.AuthenticateAgent(ctx, s.st.Pool, hashSecret(token))
	if store.IsNoRows(err) {
		return Agent{}, domain.Unauthenticated("invalid or revoked agent token (was the node deleted?)")
	}
	if err != nil {
		return Agent{}, fmt.Errorf("authenticate agent: %w", err)
	}
	return Agent{NodeID: row.NodeID, OrganizationID: row.OrganizationID, NodeName: row.NodeName}, nil
}

func need(p *domain.Principal, perm domain.Permission) error {
	if !p.HasOrg {
		return domain.Forbidden("you belong to no organization")
	}
	if !p.Can(perm) {
		return domain.Forbidden("missing permission %s", perm)
	}
	return nil
}

func decodeLabels(raw []byte) map[string]string {
	out := map[string]string{}
	if err := json.Unmarshal(raw, &out); err != nil || out == nil {
		return map[string]string{}
	}
	return out
}
