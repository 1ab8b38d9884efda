package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"golang.org/x/crypto/ssh"

	"github.com/shardform/shardform/domain"
	"github.com/shardform/shardform/store"
)

// MaxHostKeys bounds the host keys one registration or renewal signs.
const MaxHostKeys = 8

// Facts describe the machine, as node join gathers them.
type Facts struct {
	OS        string `json:"os"`
	Kernel    string `json:"kernel"`
	Arch      string `json:"arch"`
	CPUs      int32  `json:"cpus"`
	MemoryMiB int32  `json:"memory_mib"`
	DiskGiB   int32  `json:"disk_gib"`
}

// RegisterRequest is the body of POST /v1/agent/register.
type RegisterRequest struct {
	Hostname       string            `json:"hostname"`
	Name           *string           `json:"name"`
	Labels         map[string]string `json:"labels"`
	HostPublicKeys []string          `json:"host_public_keys"`
	IPv4           *string           `json:"ipv4"`
	IPv6           *string           `json:"ipv6"`
	Facts          Facts             `json:"facts"`
	Version        string            `json:"version"`
}

// NodeRecord is a node as its own agent sees it.
type NodeRecord struct {
	ID             uuid.UUID         `json:"id"`
	OrganizationID uuid.UUID         `json:"organization_id"`
	Name           string            `json:"name"`
	Provider       string            `json:"provider"`
	Status         string            `json:"status"`
	IPv4           string            `json:"ipv4"`
	IPv6           string            `json:"ipv6"`
	Labels         map[string]string `json:"labels"`
	ProvisionID    *uuid.UUID        `json:"provision_id"`
	CreatedAt      time.Time         `json:"created_at"`
}

func nodeRecord(n store.Node) NodeRecord {
	out := NodeRecord{ID: n.ID, OrganizationID: n.OrganizationID, Name: n.Name, Provider: n.Provider, Status: n.Status,
		IPv4: n.Ipv4, IPv6: n.Ipv6, Labels: decodeLabels(n.Labels), CreatedAt: n.CreatedAt}
	if n.ProvisionID.Valid {
		id := n.ProvisionID.UUID
		out.ProvisionID = &id
	}
	return out
}

// HostCertificate is one signed host key.
type HostCertificate struct {
	PublicKey   string    `json:"public_key"`
	KeyType     string    `json:"key_type"`
	Certificate string    `json:"certificate"`
	Principals  []string  `json:"principals"`
	ValidAfter  time.Time `json:"valid_after"`
	ValidBefore time.Time `json:"valid_before"`
}

// SSHD is what sshd on the node must be told: the files it reads and the
// configuration snippet (for the default paths).
type SSHD struct {
	TrustedUserCAKeys string `json:"trusted_user_ca_keys"`
	RevokedKeys       string `json:"revoked_keys"`
	Config            string `json:"config"`
}

// Trust is the organization's SSH trust material a node installs.
type Trust struct {
	UserCAKeys string `json:"user_ca_keys"`
	KRL        []byte `json:"krl"` // base64 in JSON
	KnownHosts string `json:"known_hosts"`
	SSHD       SSHD   `json:"sshd"`
	// ETags are the user CA keys' and the KRL's (user_ca, krl), as the
	// file endpoints and heartbeats name them: a node that keeps them
	// fetches neither file until one changes.
	ETags map[string]string `json:"etags"`
}

// Registration is the answer to POST /v1/agent/register.
type Registration struct {
	Node NodeRecord `json:"node"`
	// AgentToken is the node's identity from now on (X-Agent-Token); shown once.
	AgentToken               string            `json:"agent_token"`
	HostCertificates         []HostCertificate `json:"host_certificates"`
	HeartbeatIntervalSeconds int               `json:"heartbeat_interval_seconds"`
	// Warnings name what could not be done now (a host key the CA could
	// not sign yet); node refresh retries it.
	Warnings []string `json:"warnings"`
	Trust
}

func hostKeys(field string, keys []string) ([]string, error) {
	if len(keys) == 0 {
		return nil, domain.Invalid(field, "must list at least one host public key")
	}
	if len(keys) > MaxHostKeys {
		return nil, domain.Invalid(field, "must list at most %d keys", MaxHostKeys)
	}
	out := make([]string, 0, len(keys))
	for i, k := range keys {
		pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(k))
		if err != nil {
			return nil, domain.Invalid(fmt.Sprintf("%s[%d]", field, i), "must be an OpenSSH public key")
		}
		if _, ok := pub.(*ssh.Certificate); ok {
			return nil, domain.Invalid(fmt.Sprintf("%s[%d]", field, i), "must be a public key, not a certificate")
		}
		out = append(out, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub))))
	}
	return out, nil
}

func address(field string, raw *string, v6 bool) (string, error) {
	if raw == nil || *raw == "" {
		return "", nil
	}
	a, err := netip.ParseAddr(*raw)
	if err != nil || a.Is6() != v6 || a.Zone() != "" {
		kind := "an IPv4"
		if v6 {
			kind = "an IPv6"
		}
		return "", domain.Invalid(field, "must be %s address", kind)
	}
	return a.String(), nil
}

func (r RegisterRequest) validate() (RegisterRequest, error) {
	var err error
	if r.Hostname, err = domain.Name("hostname", r.Hostname, domain.MaxNameLength); err != nil {
		return r, err
	}
	if r.Name != nil && *r.Name != "" {
		n, err := domain.Name("name", *r.Name, domain.MaxNameLength)
		if err != nil {
			return r, err
		}
		r.Name = &n
	}
	if err := domain.Labels("labels", r.Labels); err != nil {
		return r, err
	}
	if r.HostPublicKeys, err = hostKeys("host_public_keys", r.HostPublicKeys); err != nil {
		return r, err
	}
	v4, err := address("ipv4", r.IPv4, false)
	if err != nil {
		return r, err
	}
	v6, err := address("ipv6", r.IPv6, true)
	if err != nil {
		return r, err
	}
	r.IPv4, r.IPv6 = &v4, &v6
	f := r.Facts
	if f.CPUs < 0 || f.MemoryMiB < 0 || f.DiskGiB < 0 {
		return r, domain.Invalid("facts", "cpus, memory_mib and disk_gib must not be negative")
	}
	for field, v := range map[string]string{"facts.os": f.OS, "facts.kernel": f.Kernel, "facts.arch": f.Arch, "version": r.Version} {
		if err := domain.CheckText(field, v, 200); err != nil {
			return r, err
		}
	}
	return r, nil
}

// errBadToken answers every registration token that cannot register: the
// caller learns nothing about which of the reasons it was.
var errBadToken = domain.Unauthenticated("invalid, expired, used-up or deleted registration token")

// Register exchanges a registration token for a node and its agent token,
// then signs the node's host keys. A token bound to a provision request
// registers that request's node (the node the apply registered); any other
// makes a new node of provider byo.
func (s *Service) Register(ctx context.Context, token string, req RegisterRequest) (Registration, error) {
	if !strings.HasPrefix(token, RegistrationTokenPrefix) {
		return Registration{}, errBadToken
	}
	req, err := req.validate()
	if err != nil {
		return Registration{}, err
	}
	agentToken, agentHash, err := newSecret(AgentTokenPrefix)
	if err != nil {
		return Registration{}, err
	}
	facts, err := json.Marshal(req.Facts)
	if err != nil {
		return Registration{}, err
	}
	var node store.Node
	err = s.st.InTx(ctx, func(tx pgx.Tx) error {
		now := s.now()
		tok, err := s.q.ClaimRegistrationToken(ctx, tx, store.ClaimRegistrationTokenParams{Now: now, TokenHash: hashSecret(token)})
		if store.IsNoRows(err) {
			return errBadToken
		}
		if err != nil {
			return fmt.Errorf("register: claim token: %w", err)
		}
		if tok.ProvisionID.Valid {
			node, err = s.q.GetNodeOfProvision(ctx, tx, store.GetNodeOfProvisionParams{OrganizationID: tok.OrganizationID, ProvisionID: tok.ProvisionID})
			if store.IsNoRows(err) {
				// The apply has not registered the node yet: the token
				// stays unspent (the transaction rolls back); retry.
				return domain.Conflict("the provision request's node is not registered yet: retry in a few seconds")
			}
			if err != nil {
				return fmt.Errorf("register: node of provision request: %w", err)
			}
			if node, err = s.q.UpdateJoinedNodeAddresses(ctx, tx, store.UpdateJoinedNodeAddressesParams{
				OrganizationID: node.OrganizationID, ID: node.ID, Ipv4: *req.IPv4, Ipv6: *req.IPv6}); err != nil {
				return fmt.Errorf("register: node addresses: %w", err)
			}
		} else {
			name := req.Hostname
			if tok.Name != "" {
				name = tok.Name
			} else if req.Name != nil && *req.Name != "" {
				name = *req.Name
			}
			labels := map[string]string{}
			maps.Copy(labels, req.Labels)
			maps.Copy(labels, decodeLabels(tok.Labels)) // the token's labels win
			if err := domain.Labels("labels", labels); err != nil {
				return err
			}
			raw, err := json.Marshal(labels)
			if err != nil {
				return err
			}
			if node, err = s.q.InsertBYONode(ctx, tx, store.InsertBYONodeParams{
				OrganizationID: tok.OrganizationID, Name: name, Vcpu: req.Facts.CPUs, MemoryMb: req.Facts.MemoryMiB,
				DiskGb: req.Facts.DiskGiB, Ipv4: *req.IPv4, Ipv6: *req.IPv6, Labels: raw,
			}); err != nil {
				return fmt.Errorf("register: create node: %w", err)
			}
		}
		// Auto-DNS names the node in this transaction, before its host
		// keys are signed: the certificates carry the fqdn. (A
		// provisioned node has its records from the apply; this only
		// adds what the addresses it reported make possible.)
		if s.dns != nil {
			if err := s.dns.NodeRegistered(ctx, tx, node); err != nil {
				return fmt.Errorf("register: %w", err)
			}
		}
		_, err = s.q.UpsertNodeAgent(ctx, tx, store.UpsertNodeAgentParams{
			NodeID: node.ID, OrganizationID: node.OrganizationID, TokenHash: agentHash,
			DisplayPrefix: displayPrefix(agentToken, AgentTokenPrefix), RegistrationTokenID: uuid.NullUUID{UUID: tok.ID, Valid: true},
			Hostname: req.Hostname, HostPublicKeys: req.HostPublicKeys, Facts: facts, Now: now,
		})
		if err != nil {
			return fmt.Errorf("register: create agent: %w", err)
		}
		return nil
	})
	if err != nil {
		return Registration{}, err
	}
	out := Registration{Node: nodeRecord(node), AgentToken: agentToken,
		HeartbeatIntervalSeconds: int(s.opts.HeartbeatInterval / time.Second), Warnings: []string{}}
	// The node is registered: what fails from here is retried by node
	// refresh with the agent token, so it is a warning, not a failure.
	out.HostCertificates, out.Warnings = s.signAll(ctx, node.OrganizationID, node.ID, req.HostPublicKeys)
	trust, err := s.trust(ctx, node.OrganizationID, out.HostCertificates)
	if err != nil {
		out.Warnings = append(out.Warnings, "SSH trust files: "+publicMessage(err))
	}
	out.Trust = trust
	return out, nil
}

func publicMessage(err error) string {
	var pe *domain.PublicError
	if errors.As(err, &pe) {
		return pe.Message
	}
	var ve *domain.ValidationError
	if errors.As(err, &ve) {
		return ve.Error()
	}
	return "internal error (see the server log)"
}

// signAll signs each host key; a key that fails is named in a warning.
func (s *Service) signAll(ctx context.Context, org, nodeID uuid.UUID, keys []string) ([]HostCertificate, []string) {
	certs, warnings := []HostCertificate{}, []string{}
	for _, k := range keys {
		c, err := s.ca.SignNodeHost(ctx, org, nodeID, k, s.opts.HostValidityHours)
		if err != nil {
			warnings = append(warnings, fmt.Sprintf("host key %s: %s", strings.Fields(k)[0], publicMessage(err)))
			continue
		}
		certs = append(certs, HostCertificate{PublicKey: k, KeyType: strings.Fields(k)[0], Certificate: c.Certificate,
			Principals: c.Principals, ValidAfter: c.ValidAfter, ValidBefore: c.ValidBefore})
	}
	return certs, warnings
}

// hostCertPath is where node join writes the certificate of a host key of
// that type: beside the key OpenSSH's ssh-keygen -A makes for it.
func hostCertPath(keyType string) string {
	kind := strings.TrimPrefix(keyType, "ssh-")
	switch {
	case strings.HasPrefix(keyType, "ecdsa-sha2-"):
		kind = "ecdsa"
	case keyType == "ssh-dss":
		kind = "dsa"
	}
	return "/etc/ssh/ssh_host_" + kind + "_key-cert.pub"
}

// sshdConfig is the snippet for the default paths: the trust files and a
// HostCertificate line for each signed host key.
func sshdConfig(certs []HostCertificate) SSHD {
	var b strings.Builder
	b.WriteString("TrustedUserCAKeys " + UserCAPath + "\nRevokedKeys " + RevokedKeyPath + "\n")
	var seen []string
	for _, c := range certs {
		if p := hostCertPath(c.KeyType); !slices.Contains(seen, p) {
			seen = append(seen, p)
			b.WriteString("HostCertificate " + p + "\n")
		}
	}
	return SSHD{TrustedUserCAKeys: UserCAPath, RevokedKeys: RevokedKeyPath, Config: b.String()}
}

func (s *Service) trust(ctx context.Context, org uuid.UUID, certs []HostCertificate) (Trust, error) {
	t := Trust{SSHD: sshdConfig(certs), ETags: map[string]string{}}
	var err error
	if t.UserCAKeys, err = s.ca.TrustedCAKeys(ctx, org); err != nil {
		return t, err
	}
	if t.KRL, err = s.ca.KRL(ctx, org); err != nil {
		return t, err
	}
	if t.KnownHosts, err = s.ca.KnownHosts(ctx, org); err != nil {
		return t, err
	}
	t.ETags = map[string]string{"user_ca": ETag([]byte(t.UserCAKeys), false), "krl": ETag(t.KRL, true)}
	return t, nil
}
