package dns

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/shardform/shardform/domain"
	"github.com/shardform/shardform/store"
)

// AutoConfig is an organization's auto-DNS setting: with it enabled, every
// node an apply registers, or that joins with a registration token, gets
// an A record (and an AAAA record when it has IPv6 and ipv6 is on) named
// by the template in the zone.
type AutoConfig struct {
	Enabled      bool       `json:"enabled"`
	CredentialID *uuid.UUID `json:"credential_id"`
	ZoneID       string     `json:"zone_id"`
	ZoneName     string     `json:"zone_name"`
	// NameTemplate names a node's records inside the zone; placeholders
	// {name}, {region}, {provider}, {org}.
	NameTemplate string     `json:"name_template"`
	TTL          int        `json:"ttl"`
	Proxied      bool       `json:"proxied"`
	IPv6         bool       `json:"ipv6"`
	UpdatedAt    *time.Time `json:"updated_at"`
}

// AutoConfigRequest is the body of PUT /v1/dns/auto-config.
type AutoConfigRequest struct {
	Enabled      bool       `json:"enabled"`
	CredentialID *uuid.UUID `json:"credential_id"`
	ZoneID       string     `json:"zone_id"`
	NameTemplate string     `json:"name_template"`
	TTL          *int       `json:"ttl"`
	Proxied      *bool      `json:"proxied"`
	IPv6         *bool      `json:"ipv6"`
}

var placeholder = regexp.MustCompile(`\{[^}]*\}`)

// dnsSafe makes a value usable inside a DNS label: lowercase letters,
// digits and hyphens.
func dnsSafe(v string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(v) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	return strings.Trim(b.String(), "-")
}

// render fills the template's placeholders.
func render(tmpl, name, region, provider, org string) string {
	return strings.NewReplacer("{name}", dnsSafe(name), "{region}", dnsSafe(region), "{provider}", dnsSafe(provider), "{org}", dnsSafe(org)).Replace(tmpl)
}

func checkTemplate(tmpl, zone string) error {
	for _, p := range placeholder.FindAllString(tmpl, -1) {
		switch p {
		case "{name}", "{region}", "{provider}", "{org}":
		default:
			return domain.Invalid("name_template", "unknown placeholder %s (use {name}, {region}, {provider}, {org})", p)
		}
	}
	if _, err := RecordName("name_template", render(tmpl, "node-1", "fsn1", "hetzner", "acme"), zone); err != nil {
		return err
	}
	return nil
}

func autoView(c store.DnsAutoConfig) AutoConfig {
	u := c.UpdatedAt
	return AutoConfig{Enabled: c.Enabled, CredentialID: nullable(c.CredentialID), ZoneID: c.ZoneID, ZoneName: c.ZoneName,
		NameTemplate: c.NameTemplate, TTL: int(c.Ttl), Proxied: c.Proxied, IPv6: c.Ipv6, UpdatedAt: &u}
}

// GetAutoConfig answers the organization's auto-DNS setting (dns:read);
// never set: off, with the defaults.
func (s *Service) GetAutoConfig(ctx context.Context, p *domain.Principal) (AutoConfig, error) {
	if err := need(p, domain.PermDNSRead); err != nil {
		return AutoConfig{}, err
	}
	c, err := s.q.GetDNSAutoConfig(ctx, s.st.Pool, p.OrgID)
	if store.IsNoRows(err) {
		return AutoConfig{NameTemplate: "{name}", TTL: 1, IPv6: true}, nil
	}
	if err != nil {
		return AutoConfig{}, fmt.Errorf("get dns auto-config: %w", err)
	}
	return autoView(c), nil
}

// PutAutoConfig replaces the auto-DNS setting (dns:write). Enabling it
// needs a zone the credential (default: the default cloudflare one) sees.
func (s *Service) PutAutoConfig(ctx context.Context, p *domain.Principal, in AutoConfigRequest) (AutoConfig, error) {
	if err := need(p, domain.PermDNSWrite); err != nil {
		return AutoConfig{}, err
	}
	tmpl := strings.TrimSpace(in.NameTemplate)
	if tmpl == "" {
		tmpl = "{name}"
	}
	params := store.UpsertDNSAutoConfigParams{OrganizationID: p.OrgID, Enabled: in.Enabled, NameTemplate: tmpl, Ttl: 1, Ipv6: true}
	if in.TTL != nil {
		if *in.TTL != 1 && (*in.TTL < 60 || *in.TTL > 86400) {
			return AutoConfig{}, domain.Invalid("ttl", "must be 1 (automatic) or 60-86400 seconds")
		}
		params.Ttl = int32(*in.TTL)
	}
	if in.Proxied != nil {
		params.Proxied = *in.Proxied
	}
	if params.Proxied && params.Ttl != 1 {
		return AutoConfig{}, domain.Invalid("ttl", "proxied records have automatic TTL: must be 1 (or left out)")
	}
	if in.IPv6 != nil {
		params.Ipv6 = *in.IPv6
	}
	zoneID := strings.TrimSpace(in.ZoneID)
	if zoneID != "" {
		if err := CheckZoneID("zone_id", zoneID); err != nil {
			return AutoConfig{}, err
		}
	}
	if in.Enabled && zoneID == "" {
		return AutoConfig{}, domain.Invalid("zone_id", "is required to enable auto-DNS")
	}
	if zoneID != "" {
		cred, err := s.credential(ctx, s.st.Pool, p.OrgID, in.CredentialID, "credential_id")
		if err != nil {
			return AutoConfig{}, err
		}
		z, err := s.zone(ctx, p.OrgID, cred, zoneID)
		if err != nil {
			return AutoConfig{}, err
		}
		if err := checkTemplate(tmpl, z.Name); err != nil {
			return AutoConfig{}, err
		}
		params.CredentialID, params.ZoneID, params.ZoneName = uuid.NullUUID{UUID: cred.ID, Valid: true}, z.ID, z.Name
	} else if err := checkTemplate(tmpl, "zone.invalid"); err != nil {
		return AutoConfig{}, err
	}
	c, err := s.q.UpsertDNSAutoConfig(ctx, s.st.Pool, params)
	if err != nil {
		return AutoConfig{}, fmt.Errorf("put dns auto-config: %w", err)
	}
	return autoView(c), nil
}

// NodeRegistered gives a node registered by an apply (or by an agent's
// registration) its auto-DNS records, inside that transaction: an A record (and AAAA), created, or
// updated when the node's address changed, each by a dns_sync job inserted
// in tx. It fails only when the database does: a name problem becomes a
// failed record, never a failed apply.
func (s *Service) NodeRegistered(ctx context.Context, tx pgx.Tx, n store.Node) error {
	cfg, err := s.q.GetDNSAutoConfig(ctx, tx, n.OrganizationID)
	if store.IsNoRows(err) || err == nil && (!cfg.Enabled || cfg.ZoneID == "" || !cfg.CredentialID.Valid) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("auto-dns of node %s: %w", n.ID, err)
	}
	orgName, err := s.q.GetOrganizationName(ctx, tx, n.OrganizationID)
	if err != nil {
		return fmt.Errorf("auto-dns of node %s: %w", n.ID, err)
	}
	want := map[string]string{}
	if n.Ipv4 != "" {
		want["A"] = n.Ipv4
	}
	if cfg.Ipv6 && n.Ipv6 != "" {
		want["AAAA"] = n.Ipv6
	}
	existing, err := s.q.ListAutoDNSRecordsOfNode(ctx, tx, store.ListAutoDNSRecordsOfNodeParams{OrganizationID: n.OrganizationID, NodeID: uuid.NullUUID{UUID: n.ID, Valid: true}})
	if err != nil {
		return fmt.Errorf("auto-dns of node %s: %w", n.ID, err)
	}
	have := map[string]store.DnsRecord{}
	for _, r := range existing {
		have[r.Type] = r
	}
	rendered := render(cfg.NameTemplate, n.Name, n.Region, n.Provider, orgName)
	for _, typ := range []string{"A", "AAAA"} {
		content, wanted := want[typ]
		cur, exists := have[typ]
		if !wanted {
			if exists {
				if err := s.autoDelete(ctx, tx, cur); err != nil {
					return err
				}
			}
			continue
		}
		ttl, proxied := int(cfg.Ttl), cfg.Proxied
		d, verr := Spec{Type: typ, Name: rendered, Content: content, TTL: &ttl, Proxied: &proxied}.Validate(cfg.ZoneName)
		if verr != nil {
			if !exists {
				_, err := s.q.InsertFailedDNSRecord(ctx, tx, store.InsertFailedDNSRecordParams{OrganizationID: n.OrganizationID, CredentialID: cfg.CredentialID,
					ZoneID: cfg.ZoneID, ZoneName: cfg.ZoneName, Type: typ, Name: domain.Truncate(rendered+"."+cfg.ZoneName, 253), Content: content,
					Ttl: int32(ttl), Proxied: proxied, NodeID: uuid.NullUUID{UUID: n.ID, Valid: true},
					Error: "auto-DNS could not name the node's record: " + verr.Error()})
				if err != nil && !store.IsNoRows(err) {
					return fmt.Errorf("auto-dns of node %s: %w", n.ID, err)
				}
			}
			s.log.WarnContext(ctx, "auto-dns: no valid name for a node", slog.String("node_id", n.ID.String()), slog.Any("error", verr))
			continue
		}
		if exists {
			if cur.Name == d.Name && cur.Content == d.Content && int(cur.Ttl) == d.TTL && cur.Proxied == d.Proxied && cur.Status != StatusFailed {
				continue
			}
			upd, err := s.q.UpdateDNSRecordDesired(ctx, tx, store.UpdateDNSRecordDesiredParams{OrganizationID: n.OrganizationID, ID: cur.ID,
				Name: d.Name, Content: d.Content, Ttl: int32(d.TTL), Proxied: d.Proxied})
			if store.IsUniqueViolation(err) {
				s.log.WarnContext(ctx, "auto-dns: another record already has the node's new name and address", slog.String("node_id", n.ID.String()))
				continue
			}
			if err != nil {
				return fmt.Errorf("auto-dns of node %s: %w", n.ID, err)
			}
			if err := s.enqueue(ctx, tx, upd); err != nil {
				return err
			}
			if err := s.auditTx(ctx, tx, n.OrganizationID, "dns.auto.update", upd.ID.String()+": "+typ+" "+d.Name+" "+d.Content+" (node "+n.ID.String()+")"); err != nil {
				return err
			}
			continue
		}
		rec, err := s.q.InsertAutoDNSRecord(ctx, tx, store.InsertAutoDNSRecordParams{OrganizationID: n.OrganizationID, CredentialID: cfg.CredentialID,
			ZoneID: cfg.ZoneID, ZoneName: cfg.ZoneName, Type: typ, Name: d.Name, Content: d.Content, Ttl: int32(d.TTL), Proxied: d.Proxied,
			NodeID: uuid.NullUUID{UUID: n.ID, Valid: true}})
		if store.IsNoRows(err) {
			continue // a record of this name, type and content exists already
		}
		if err != nil {
			return fmt.Errorf("auto-dns of node %s: %w", n.ID, err)
		}
		if err := s.enqueue(ctx, tx, rec); err != nil {
			return err
		}
		if err := s.auditTx(ctx, tx, n.OrganizationID, "dns.auto.create", rec.ID.String()+": "+typ+" "+d.Name+" "+d.Content+" (node "+n.ID.String()+")"); err != nil {
			return err
		}
	}
	return nil
}

// NodeAddressChanged keeps the auto-DNS records of a node whose addresses
// changed (a power cycle gave an EC2 instance a new public IPv4) true to
// them, inside the caller's transaction: when auto-DNS manages records of
// the node and is still enabled, the node's desired records are applied
// as at its registration (NodeRegistered: the A/AAAA contents updated,
// each change a dns_sync job inserted in tx). A node auto-DNS gave no
// records (registered before it was enabled, or joined) is left alone.
func (s *Service) NodeAddressChanged(ctx context.Context, tx pgx.Tx, n store.Node) error {
	existing, err := s.q.ListAutoDNSRecordsOfNode(ctx, tx, store.ListAutoDNSRecordsOfNodeParams{OrganizationID: n.OrganizationID, NodeID: uuid.NullUUID{UUID: n.ID, Valid: true}})
	if err != nil {
		return fmt.Errorf("auto-dns of node %s: %w", n.ID, err)
	}
	managed := false
	for _, r := range existing {
		managed = managed || r.Status != StatusDeleting
	}
	if !managed {
		return nil
	}
	return s.NodeRegistered(ctx, tx, n)
}

func (s *Service) autoDelete(ctx context.Context, tx pgx.Tx, r store.DnsRecord) error {
	del, err := s.q.MarkDNSRecordDeleting(ctx, tx, store.MarkDNSRecordDeletingParams{OrganizationID: r.OrganizationID, ID: r.ID})
	if err != nil {
		return fmt.Errorf("auto-dns: delete record %s: %w", r.ID, err)
	}
	if err := s.enqueue(ctx, tx, del); err != nil {
		return err
	}
	return s.auditTx(ctx, tx, r.OrganizationID, "dns.auto.delete", r.ID.String()+": "+r.Type+" "+r.Name)
}

// NodeRemoved deletes the auto-DNS records of the node of a provision
// request being destroyed, inside the destroy's transaction (before the
// node row goes).
func (s *Service) NodeRemoved(ctx context.Context, tx pgx.Tx, orgID, provisionID uuid.UUID) error {
	n, err := s.q.GetNodeOfProvision(ctx, tx, store.GetNodeOfProvisionParams{OrganizationID: orgID, ProvisionID: uuid.NullUUID{UUID: provisionID, Valid: true}})
	if store.IsNoRows(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("auto-dns of provision %s: %w", provisionID, err)
	}
	return s.NodeDeleted(ctx, tx, orgID, n.ID)
}

// NodeDeleted deletes the auto-DNS records of a node being deleted (a
// machine brought with node join: DELETE /v1/nodes/{id}), inside the
// deleting transaction, each by a dns_sync job inserted in tx.
func (s *Service) NodeDeleted(ctx context.Context, tx pgx.Tx, orgID, nodeID uuid.UUID) error {
	recs, err := s.q.ListAutoDNSRecordsOfNode(ctx, tx, store.ListAutoDNSRecordsOfNodeParams{OrganizationID: orgID, NodeID: uuid.NullUUID{UUID: nodeID, Valid: true}})
	if err != nil {
		return fmt.Errorf("auto-dns of node %s: %w", nodeID, err)
	}
	for _, r := range recs {
		if r.Status == StatusDeleting {
			continue
		}
		if err := s.autoDelete(ctx, tx, r); err != nil {
			return err
		}
	}
	return nil
}
