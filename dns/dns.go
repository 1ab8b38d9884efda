// Package dns keeps an organization's DNS records in Cloudflare zones: the
// desired records (made through the API or by auto-DNS for nodes), the
// dns_sync jobs that make Cloudflare hold them, and the dns_reconcile job
// that repairs drift. Every record shardform creates carries its marker in
// the record's comment ("shardform:<organization id>:<record id>");
// shardform updates and deletes only records carrying its marker for the
// organization (external-dns's rule), and takes over a record without one
// only when asked (adopt). Cloudflare is reached through cloudflare-go.
package dns

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"regexp"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"golang.org/x/sync/singleflight"

	"github.com/shardform/shardform/credentials"
	"github.com/shardform/shardform/domain"
	"github.com/shardform/shardform/ratelimit"
	"github.com/shardform/shardform/store"
)

// Record statuses.
const (
	StatusPending  = "pending"
	StatusSynced   = "synced"
	StatusFailed   = "failed"
	StatusDeleting = "deleting"
	StatusDeleted  = "deleted"
)

// SecretOpener opens a stored credential's secret (credentials.Service).
type SecretOpener interface {
	Secret(ctx context.Context, orgID, id uuid.UUID) (credentials.Secret, error)
}

// Queue inserts jobs inside the caller's transaction (river.Client does).
type Queue interface {
	InsertTx(ctx context.Context, tx pgx.Tx, args river.JobArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error)
}

// Options configure the service.
type Options struct {
	// Endpoint is Cloudflare's API base URL (SHARDFORM_CLOUDFLARE_ENDPOINT);
	// empty: Cloudflare's own.
	Endpoint string
	// ZoneListTTL is how long a credential's zone list is reused (default 1 minute).
	ZoneListTTL time.Duration
	// ZoneCopyTTL is how long a zone's records, as read from Cloudflare,
	// are trusted for name checks before a create reads the zone again
	// (default 5 minutes; negative: read every time).
	ZoneCopyTTL time.Duration
	// RateLimit is the requests each token may make per RateLimitWindow,
	// counted in Postgres for every process together (default 1,200:
	// Cloudflare's limit).
	RateLimit int
	// RateLimitWindow is the window of RateLimit (default 5 minutes, Cloudflare's).
	RateLimitWindow time.Duration
	Now             func() time.Time
	Logger          *slog.Logger
}

// Service is the DNS domain.
type Service struct {
	st      *store.Store
	q       *store.Queries
	secrets SecretOpener
	queue   Queue
	opts    Options
	budget  *budget
	calls   atomic.Int64
	log     *slog.Logger
	// flight makes concurrent requests of this process that need the same
	// zone list or whole-zone read share one read.
	flight singleflight.Group
}

// New builds the service.
func New(st *store.Store, secrets SecretOpener, opts Options) *Service {
	if opts.ZoneListTTL == 0 {
		opts.ZoneListTTL = time.Minute
	}
	if opts.ZoneCopyTTL == 0 {
		opts.ZoneCopyTTL = 5 * time.Minute
	}
	if opts.RateLimit <= 0 {
		opts.RateLimit = 1200
	}
	if opts.RateLimitWindow <= 0 {
		opts.RateLimitWindow = 5 * time.Minute
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Service{st: st, q: st.Q, secrets: secrets, opts: opts, log: opts.Logger,
		budget: newBudget(ratelimit.New(st.Pool, opts.Now), opts.Now, opts.RateLimit, opts.RateLimitWindow)}
}

// UseQueue sets the job queue (the River client, built after its workers).
func (s *Service) UseQueue(q Queue) { s.queue = q }

// Calls is the number of Cloudflare API calls this process made.
func (s *Service) Calls() int64 { return s.calls.Load() }

func (s *Service) countCall() { s.calls.Add(1) }

func need(p *domain.Principal, perm domain.Permission) error {
	if !p.HasOrg {
		return domain.Forbidden("you belong to no organization")
	}
	if !p.Can(perm) {
		return domain.Forbidden("missing permission %s", perm)
	}
	return nil
}

// Record is a managed record as the API shows it.
type Record struct {
	ID           uuid.UUID  `json:"id"`
	ZoneID       string     `json:"zone_id"`
	ZoneName     string     `json:"zone_name"`
	Type         string     `json:"type"`
	Name         string     `json:"name"`
	Content      string     `json:"content"`
	TTL          int        `json:"ttl"`
	Proxied      bool       `json:"proxied"`
	Priority     *int       `json:"priority"`
	NodeID       *uuid.UUID `json:"node_id"`
	CredentialID *uuid.UUID `json:"credential_id"`
	// Auto: made by auto-DNS for its node.
	Auto bool `json:"auto"`
	// Adopt: taking over a record that had no marker (until synced).
	Adopt  bool   `json:"adopt"`
	Status string `json:"status"`
	// CloudflareID is Cloudflare's record id once synced.
	CloudflareID string `json:"cloudflare_id"`
	// Error is Cloudflare's message (failed), or the last attempt's while retrying.
	Error     string     `json:"error"`
	SyncedAt  *time.Time `json:"synced_at"`
	CreatedAt time.Time  `json:"created_at"`
	UpdatedAt time.Time  `json:"updated_at"`
}

func nullable(id uuid.NullUUID) *uuid.UUID {
	if !id.Valid {
		return nil
	}
	v := id.UUID
	return &v
}

func intPtr(v pgtype.Int4) *int {
	if !v.Valid {
		return nil
	}
	n := int(v.Int32)
	return &n
}

func int4(p *int) pgtype.Int4 {
	if p == nil {
		return pgtype.Int4{}
	}
	return pgtype.Int4{Int32: int32(*p), Valid: true}
}

func view(r store.DnsRecord) Record {
	return Record{ID: r.ID, ZoneID: r.ZoneID, ZoneName: r.ZoneName, Type: r.Type, Name: r.Name, Content: r.Content,
		TTL: int(r.Ttl), Proxied: r.Proxied, Priority: intPtr(r.Priority), NodeID: nullable(r.NodeID),
		CredentialID: nullable(r.CredentialID), Auto: r.Auto, Adopt: r.Adopt, Status: r.Status,
		CloudflareID: r.CloudflareID, Error: r.Error, SyncedAt: r.SyncedAt, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
}

func desiredOf(r store.DnsRecord) Desired {
	return Desired{Type: r.Type, Name: r.Name, Content: r.Content, TTL: int(r.Ttl), Proxied: r.Proxied, Priority: intPtr(r.Priority)}
}

// CreateRequest is the body of POST /v1/dns/records (the reference's body,
// plus weight, port and target for SRV records).
type CreateRequest struct {
	// CredentialID is the cloudflare credential; default: the organization's default one.
	CredentialID *uuid.UUID `json:"credential_id"`
	ZoneID       string     `json:"zone_id"`
	Type         string     `json:"type"`
	// Name is relative to the zone ("www", "@"), or fully qualified.
	Name string `json:"name"`
	// Content: an IPv4 (A), IPv6 (AAAA), host name (CNAME, MX), text (TXT),
	// "weight port target" (SRV), `flags tag "value"` (CAA). With node_id, an
	// A or AAAA record without content gets the node's address.
	Content  string `json:"content"`
	TTL      *int   `json:"ttl"`
	Proxied  *bool  `json:"proxied"`
	Priority *int   `json:"priority"`
	Weight   *int   `json:"weight"`
	Port     *int   `json:"port"`
	// Target is an SRV record's target; with node_id, the node's name.
	Target string     `json:"target"`
	NodeID *uuid.UUID `json:"node_id"`
	// Adopt takes over an existing record of the same name and type that
	// carries no shardform marker (else such a record is a 409).
	Adopt bool `json:"adopt"`
}

// UpdateRequest is the body of PUT /v1/dns/records/{id}: absent fields stay.
type UpdateRequest struct {
	Name     *string `json:"name"`
	Content  *string `json:"content"`
	TTL      *int    `json:"ttl"`
	Proxied  *bool   `json:"proxied"`
	Priority *int    `json:"priority"`
	Weight   *int    `json:"weight"`
	Port     *int    `json:"port"`
	Target   *string `json:"target"`
}

// Filter narrows GET /v1/dns/records.
type Filter struct {
	ZoneID, Type, Name, Status string
	NodeID                     uuid.NullUUID
}

var zoneIDRE = regexp.MustCompile(`^[0-9a-f]{32}$`)

// CheckZoneID checks a Cloudflare zone id (32 lowercase hex characters).
func CheckZoneID(field, id string) error {
	if !zoneIDRE.MatchString(id) {
		return domain.Invalid(field, "must be a Cloudflare zone id (32 lowercase hexadecimal characters)")
	}
	return nil
}

// credential resolves the cloudflare credential to use: id, or the
// organization's default.
func (s *Service) credential(ctx context.Context, db store.DBTX, org uuid.UUID, id *uuid.UUID, field string) (store.Credential, error) {
	if id == nil {
		c, err := s.q.GetDefaultCredential(ctx, db, store.GetDefaultCredentialParams{OrganizationID: org, Provider: "cloudflare"})
		if store.IsNoRows(err) {
			return c, domain.Invalid(field, "is required: the organization has no cloudflare credential (POST /v1/credentials with provider cloudflare)")
		}
		if err != nil {
			return c, fmt.Errorf("default cloudflare credential: %w", err)
		}
		return c, nil
	}
	c, err := s.q.GetCredential(ctx, db, store.GetCredentialParams{OrganizationID: org, ID: *id})
	if store.IsNoRows(err) {
		return c, domain.NotFound("credential")
	}
	if err != nil {
		return c, fmt.Errorf("get credential %s: %w", *id, err)
	}
	if c.Provider != "cloudflare" {
		return c, domain.Invalid(field, "must be a cloudflare credential (this one is %s)", c.Provider)
	}
	return c, nil
}

// clientFor opens a credential's token and builds a client for it.
func (s *Service) clientFor(ctx context.Context, org, credID uuid.UUID) (*client, error) {
	secret, err := s.secrets.Secret(ctx, org, credID)
	if err != nil {
		return nil, err
	}
	return s.newClient(secret["api_token"])
}

// publicError makes a Cloudflare failure during an API call the caller's
// answer: a refused credential or a failed request is 422 with
// Cloudflare's message; an outage is 503.
func publicError(err error) error {
	switch kindOf(err) {
	case nil, ErrRefused, errNotFound:
		if _, ok := err.(*cfError); ok {
			return &domain.PublicError{Kind: domain.ErrUnprocessable, Message: err.Error()}
		}
		return err
	case errRateLimited, errTransient:
		return domain.Unavailable("%s: try again later", err.Error())
	}
	return err
}

// Zone is a zone a credential can see.
type Zone struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Status string `json:"status"`
}

// zones lists a credential's zones, reusing a read younger than the TTL.
func (s *Service) zones(ctx context.Context, org uuid.UUID, cred store.Credential, fresh bool) ([]Zone, error) {
	if !fresh {
		row, err := s.q.GetDNSZoneList(ctx, s.st.Pool, store.GetDNSZoneListParams{OrganizationID: org, CredentialID: cred.ID})
		if err == nil && s.opts.Now().Sub(row.ReadAt) < s.opts.ZoneListTTL {
			var zs []Zone
			if json.Unmarshal(row.Zones, &zs) == nil {
				return zs, nil
			}
		} else if err != nil && !store.IsNoRows(err) {
			return nil, fmt.Errorf("read zone list: %w", err)
		}
	}
	v, err, _ := s.flight.Do("zones:"+org.String()+":"+cred.ID.String(), func() (any, error) {
		cl, err := s.clientFor(ctx, org, cred.ID)
		if err != nil {
			return nil, err
		}
		zs, err := cl.listZones(ctx)
		if k := kindOf(err); k == errTransient || k == errRateLimited {
			// Cloudflare is down or limiting: an older list still names the zones.
			row, rerr := s.q.GetDNSZoneList(ctx, s.st.Pool, store.GetDNSZoneListParams{OrganizationID: org, CredentialID: cred.ID})
			var old []Zone
			if rerr == nil && json.Unmarshal(row.Zones, &old) == nil {
				return old, nil
			}
		}
		if err != nil {
			return nil, publicError(err)
		}
		b, _ := json.Marshal(zs)
		if err := s.q.UpsertDNSZoneList(ctx, s.st.Pool, store.UpsertDNSZoneListParams{OrganizationID: org, CredentialID: cred.ID, Zones: b, ReadAt: s.opts.Now()}); err != nil {
			return nil, fmt.Errorf("store zone list: %w", err)
		}
		return zs, nil
	})
	if err != nil {
		return nil, err
	}
	return v.([]Zone), nil
}

// zone finds one zone the credential can see (404 otherwise).
func (s *Service) zone(ctx context.Context, org uuid.UUID, cred store.Credential, zoneID string) (Zone, error) {
	for _, fresh := range []bool{false, true} {
		zs, err := s.zones(ctx, org, cred, fresh)
		if err != nil {
			return Zone{}, err
		}
		for _, z := range zs {
			if z.ID == zoneID {
				return z, nil
			}
		}
	}
	return Zone{}, domain.NotFound("zone (for this credential)")
}

// ListZones lists the zones a credential (default: the organization's
// default cloudflare credential) can see (dns:read).
func (s *Service) ListZones(ctx context.Context, p *domain.Principal, credID *uuid.UUID) ([]Zone, error) {
	if err := need(p, domain.PermDNSRead); err != nil {
		return nil, err
	}
	cred, err := s.credential(ctx, s.st.Pool, p.OrgID, credID, "credential_id")
	if err != nil {
		return nil, err
	}
	return s.zones(ctx, p.OrgID, cred, false)
}

// ZoneRecord is a record of a zone as Cloudflare has it.
type ZoneRecord struct {
	ID       string `json:"id"`
	Type     string `json:"type"`
	Name     string `json:"name"`
	Content  string `json:"content"`
	TTL      int    `json:"ttl"`
	Proxied  bool   `json:"proxied"`
	Priority *int   `json:"priority"`
	Comment  string `json:"comment"`
	// Managed: the record carries this organization's marker.
	Managed bool `json:"managed"`
	// ShardformID is the managed record's id in shardform.
	ShardformID *uuid.UUID `json:"shardform_id"`
}

// ZoneRecords answers every record of a zone as Cloudflare has it now,
// each marked managed or not (dns:read); the zone's copy is refreshed.
func (s *Service) ZoneRecords(ctx context.Context, p *domain.Principal, zoneID string, credID *uuid.UUID, page domain.Page) ([]ZoneRecord, int64, error) {
	if err := need(p, domain.PermDNSRead); err != nil {
		return nil, 0, err
	}
	if err := CheckZoneID("zone_id", zoneID); err != nil {
		return nil, 0, err
	}
	cred, err := s.credential(ctx, s.st.Pool, p.OrgID, credID, "credential_id")
	if err != nil {
		return nil, 0, err
	}
	if _, err := s.zone(ctx, p.OrgID, cred, zoneID); err != nil {
		return nil, 0, err
	}
	cl, err := s.clientFor(ctx, p.OrgID, cred.ID)
	if err != nil {
		return nil, 0, err
	}
	recs, _, err := s.readZone(ctx, cl, p.OrgID, zoneID)
	if err != nil {
		return nil, 0, publicError(err)
	}
	out := make([]ZoneRecord, len(recs))
	for i, r := range recs {
		out[i] = ZoneRecord{ID: r.CloudflareID, Type: r.Type, Name: r.Name, Content: r.Content, TTL: int(r.Ttl), Proxied: r.Proxied,
			Priority: intPtr(r.Priority), Comment: r.Comment}
		if o, id, ok := parseMarker(r.Comment); ok && o == p.OrgID {
			out[i].Managed, out[i].ShardformID = true, &id
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		if a.Type != b.Type {
			return a.Type < b.Type
		}
		return a.Content < b.Content
	})
	total := int64(len(out))
	lo := min(int(page.Offset()), len(out))
	hi := min(lo+int(page.Limit), len(out))
	return out[lo:hi], total, nil
}

// Get answers one managed record (dns:read).
func (s *Service) Get(ctx context.Context, p *domain.Principal, id uuid.UUID) (Record, error) {
	if err := need(p, domain.PermDNSRead); err != nil {
		return Record{}, err
	}
	r, err := s.q.GetDNSRecord(ctx, s.st.Pool, store.GetDNSRecordParams{OrganizationID: p.OrgID, ID: id})
	if store.IsNoRows(err) {
		return Record{}, domain.NotFound("dns record")
	}
	if err != nil {
		return Record{}, fmt.Errorf("get dns record %s: %w", id, err)
	}
	return view(r), nil
}

func optional(v string) *string {
	if v == "" {
		return nil
	}
	return &v
}

// List lists the organization's managed records (dns:read); deleted ones
// only with status=deleted.
func (s *Service) List(ctx context.Context, p *domain.Principal, f Filter, page domain.Page) ([]Record, int64, error) {
	if err := need(p, domain.PermDNSRead); err != nil {
		return nil, 0, err
	}
	if f.Type != "" {
		f.Type = strings.ToUpper(f.Type)
	}
	if f.Name != "" {
		f.Name = normalizeHost(f.Name)
	}
	total, err := s.q.CountDNSRecords(ctx, s.st.Pool, store.CountDNSRecordsParams{OrganizationID: p.OrgID, ZoneID: optional(f.ZoneID),
		Type: optional(f.Type), Name: optional(f.Name), NodeID: f.NodeID, Status: optional(f.Status)})
	if err != nil {
		return nil, 0, fmt.Errorf("count dns records: %w", err)
	}
	rows, err := s.q.ListDNSRecords(ctx, s.st.Pool, store.ListDNSRecordsParams{OrganizationID: p.OrgID, ZoneID: optional(f.ZoneID),
		Type: optional(f.Type), Name: optional(f.Name), NodeID: f.NodeID, Status: optional(f.Status), Lim: page.Limit, Off: page.Offset()})
	if err != nil {
		return nil, 0, fmt.Errorf("list dns records: %w", err)
	}
	out := make([]Record, len(rows))
	for i, r := range rows {
		out[i] = view(r)
	}
	return out, total, nil
}

// nodeTarget fills a spec from a node: an A or AAAA record without content
// gets the node's address; an SRV record without a target, the node's name.
func (s *Service) nodeTarget(ctx context.Context, db store.DBTX, org, nodeID uuid.UUID, sp *Spec) error {
	n, err := s.q.GetNode(ctx, db, store.GetNodeParams{OrganizationID: org, ID: nodeID})
	if store.IsNoRows(err) {
		return domain.NotFound("node")
	}
	if err != nil {
		return fmt.Errorf("get node %s: %w", nodeID, err)
	}
	switch strings.ToUpper(sp.Type) {
	case "A":
		if sp.Content == "" {
			if n.Ipv4 == "" {
				return domain.Invalid("content", "is required: the node has no IPv4 address")
			}
			sp.Content = n.Ipv4
		}
	case "AAAA":
		if sp.Content == "" {
			if n.Ipv6 == "" {
				return domain.Invalid("content", "is required: the node has no IPv6 address")
			}
			sp.Content = n.Ipv6
		}
	case "SRV":
		if sp.Target == "" && sp.Content == "" {
			recs, err := s.q.ListDNSRecordsOfNodes(ctx, db, store.ListDNSRecordsOfNodesParams{OrganizationID: org, NodeIds: []uuid.UUID{nodeID}})
			if err != nil {
				return fmt.Errorf("node names: %w", err)
			}
			for _, r := range recs {
				if r.Type == "A" || r.Type == "AAAA" {
					sp.Target = r.Name
					break
				}
			}
			if sp.Target == "" {
				return domain.Invalid("target", "is required: the node has no DNS name yet (auto-DNS, or an A record with its node_id)")
			}
		}
	}
	return nil
}

// Create records the desired record and queues its dns_sync job in one
// transaction (dns:write). A record of the same name and type without
// this organization's marker is a 409 naming it, unless adopt (then it is
// taken over); a CNAME never shares its name.
func (s *Service) Create(ctx context.Context, p *domain.Principal, in CreateRequest) (Record, error) {
	if err := need(p, domain.PermDNSWrite); err != nil {
		return Record{}, err
	}
	zoneID := strings.TrimSpace(in.ZoneID)
	if zoneID == "" {
		return Record{}, domain.Invalid("zone_id", "is required")
	}
	if err := CheckZoneID("zone_id", zoneID); err != nil {
		return Record{}, err
	}
	if strings.TrimSpace(in.Type) == "" {
		return Record{}, domain.Invalid("type", "is required")
	}
	sp := Spec{Type: in.Type, Name: in.Name, Content: in.Content, TTL: in.TTL, Proxied: in.Proxied, Priority: in.Priority,
		Weight: in.Weight, Port: in.Port, Target: in.Target}
	if in.NodeID != nil {
		if err := s.nodeTarget(ctx, s.st.Pool, p.OrgID, *in.NodeID, &sp); err != nil {
			return Record{}, err
		}
	}
	// Validate what needs no zone first: bad input never costs an API call.
	if _, err := sp.Validate("zone.invalid"); err != nil {
		var ve *domain.ValidationError
		if ok := asValidation(err, &ve); !ok || ve.Field != "name" {
			return Record{}, err
		}
	}
	cred, err := s.credential(ctx, s.st.Pool, p.OrgID, in.CredentialID, "credential_id")
	if err != nil {
		return Record{}, err
	}
	zone, err := s.zone(ctx, p.OrgID, cred, zoneID)
	if err != nil {
		return Record{}, err
	}
	d, err := sp.Validate(zone.Name)
	if err != nil {
		return Record{}, err
	}
	if err := s.ensureCopy(ctx, p.OrgID, cred.ID, zoneID); err != nil {
		if !s.staleCopyUsable(ctx, p.OrgID, zoneID, err) {
			return Record{}, publicError(err)
		}
		// Cloudflare is down or limiting: check against the older copy; the
		// worker lists the name in Cloudflare before it creates.
		s.log.WarnContext(ctx, "dns create checked against an old zone copy", slog.String("zone_id", zoneID), slog.Any("error", err))
	}
	var out store.DnsRecord
	err = s.st.InTx(ctx, func(tx pgx.Tx) error {
		adoptID, err := s.checkName(ctx, tx, p.OrgID, zoneID, d, uuid.Nil, in.Adopt)
		if err != nil {
			return err
		}
		var node uuid.NullUUID
		if in.NodeID != nil {
			node = uuid.NullUUID{UUID: *in.NodeID, Valid: true}
		}
		out, err = s.q.InsertDNSRecord(ctx, tx, store.InsertDNSRecordParams{
			OrganizationID: p.OrgID, CredentialID: uuid.NullUUID{UUID: cred.ID, Valid: true}, ZoneID: zoneID, ZoneName: zone.Name,
			Type: d.Type, Name: d.Name, Content: d.Content, Ttl: int32(d.TTL), Proxied: d.Proxied, Priority: int4(d.Priority),
			NodeID: node, Auto: false, Adopt: adoptID != "", CloudflareID: adoptID,
			CreatedBy: uuid.NullUUID{UUID: p.UserID, Valid: p.UserID != uuid.Nil},
		})
		if store.IsUniqueViolation(err) {
			return domain.Conflict("a %s record %s with this content already exists", d.Type, d.Name)
		}
		if store.IsForeignKeyViolation(err) {
			return domain.NotFound("node")
		}
		if err != nil {
			return fmt.Errorf("create dns record: %w", err)
		}
		return s.enqueue(ctx, tx, out)
	})
	if err != nil {
		return Record{}, err
	}
	return view(out), nil
}

func asValidation(err error, ve **domain.ValidationError) bool {
	v, ok := err.(*domain.ValidationError)
	if ok {
		*ve = v
	}
	return ok
}

// enqueue inserts the record's dns_sync job in the caller's transaction.
func (s *Service) enqueue(ctx context.Context, tx pgx.Tx, r store.DnsRecord) error {
	if s.queue == nil {
		return domain.Unavailable("the DNS queue is not running in this process")
	}
	if _, err := s.queue.InsertTx(ctx, tx, SyncArgs{OrganizationID: r.OrganizationID, RecordID: r.ID}, nil); err != nil {
		return fmt.Errorf("queue dns sync of %s: %w", r.ID, err)
	}
	return nil
}

// conflicts reports whether a record of type a and one of type b may not
// share a name: the same type, or either of them a CNAME.
func conflicts(a, b string) bool { return a == b || a == "CNAME" || b == "CNAME" }

// checkName refuses a desired record whose name is taken: by one of the
// organization's own records (the same type and content, or the CNAME
// rule), or by a record in the zone's copy without this organization's
// marker. With adopt, an unmarked record of the same type is taken over:
// its Cloudflare id is returned.
func (s *Service) checkName(ctx context.Context, tx pgx.Tx, org uuid.UUID, zoneID string, d Desired, self uuid.UUID, adopt bool) (string, error) {
	own, err := s.q.ListLiveDNSRecordsByName(ctx, tx, store.ListLiveDNSRecordsByNameParams{OrganizationID: org, ZoneID: zoneID, Name: d.Name})
	if err != nil {
		return "", fmt.Errorf("check dns name: %w", err)
	}
	for _, o := range own {
		if o.ID == self {
			continue
		}
		if o.Type == d.Type && o.Content == d.Content {
			return "", domain.Conflict("record %s already is %s %s %s", o.ID, o.Type, o.Name, o.Content)
		}
		if conflicts(o.Type, d.Type) && (o.Type != d.Type || o.Type == "CNAME") {
			return "", domain.Invalid("name", "a CNAME cannot share its name with another record: record %s is %s %s", o.ID, o.Type, o.Name)
		}
	}
	zrs, err := s.q.ListDNSZoneRecordsByName(ctx, tx, store.ListDNSZoneRecordsByNameParams{OrganizationID: org, ZoneID: zoneID, Name: d.Name})
	if err != nil {
		return "", fmt.Errorf("check dns name: %w", err)
	}
	adoptID := ""
	for _, z := range zrs {
		if ownedBy(z.Comment, org) || !conflicts(z.Type, d.Type) {
			continue
		}
		_, _, marked := parseMarker(z.Comment)
		if adopt && z.Type == d.Type && !marked {
			if adoptID == "" || z.Content == d.Content {
				adoptID = z.CloudflareID
			}
			continue
		}
		what := fmt.Sprintf("%s %s %s (Cloudflare record %s)", z.Type, z.Name, z.Content, z.CloudflareID)
		if marked {
			return "", domain.Conflict("the name is taken by a record another organization manages: %s", what)
		}
		if z.Type == d.Type {
			return "", domain.Conflict("the name is taken by a record shardform does not manage: %s; adopt: true takes it over", what)
		}
		return "", domain.Invalid("name", "a CNAME cannot share its name with another record: %s is not managed by shardform", what)
	}
	return adoptID, nil
}

// specOf is a stored record as a spec, with an update's fields over it.
func specOf(r store.DnsRecord, in UpdateRequest) Spec {
	sp := Spec{Type: r.Type, Name: r.Name, Content: r.Content, Priority: intPtr(r.Priority)}
	ttl, proxied := int(r.Ttl), r.Proxied
	sp.TTL, sp.Proxied = &ttl, &proxied
	if in.Name != nil {
		sp.Name = *in.Name
	}
	if in.TTL != nil {
		sp.TTL = in.TTL
	}
	if in.Proxied != nil {
		sp.Proxied = in.Proxied
		if *in.Proxied && in.TTL == nil {
			one := 1 // proxying makes the TTL automatic
			sp.TTL = &one
		}
	}
	if in.Priority != nil {
		sp.Priority = in.Priority
	}
	if r.Type == "SRV" && (in.Weight != nil || in.Port != nil || in.Target != nil) && in.Content == nil {
		// Change parts of "weight port target".
		f := strings.Fields(r.Content)
		if len(f) == 3 {
			var w, p int
			fmt.Sscan(f[0], &w)
			fmt.Sscan(f[1], &p)
			sp.Weight, sp.Port, sp.Target = &w, &p, f[2]
		}
		sp.Content = ""
	}
	if in.Content != nil {
		sp.Content = *in.Content
	}
	if in.Weight != nil {
		sp.Weight = in.Weight
	}
	if in.Port != nil {
		sp.Port = in.Port
	}
	if in.Target != nil {
		sp.Target = *in.Target
	}
	return sp
}

// Update changes a record's desired state and queues its sync (dns:write).
func (s *Service) Update(ctx context.Context, p *domain.Principal, id uuid.UUID, in UpdateRequest) (Record, error) {
	if err := need(p, domain.PermDNSWrite); err != nil {
		return Record{}, err
	}
	var out store.DnsRecord
	err := s.st.InTx(ctx, func(tx pgx.Tx) error {
		cur, err := s.q.LockDNSRecord(ctx, tx, store.LockDNSRecordParams{OrganizationID: p.OrgID, ID: id})
		if store.IsNoRows(err) {
			return domain.NotFound("dns record")
		}
		if err != nil {
			return fmt.Errorf("update dns record %s: %w", id, err)
		}
		if cur.Status == StatusDeleting || cur.Status == StatusDeleted {
			return domain.Conflict("dns record %s is %s", id, cur.Status)
		}
		d, err := specOf(cur, in).Validate(cur.ZoneName)
		if err != nil {
			return err
		}
		if d.Name != cur.Name || d.Content != cur.Content || d.Type != cur.Type {
			if _, err := s.checkName(ctx, tx, p.OrgID, cur.ZoneID, d, cur.ID, false); err != nil {
				return err
			}
		}
		out, err = s.q.UpdateDNSRecordDesired(ctx, tx, store.UpdateDNSRecordDesiredParams{OrganizationID: p.OrgID, ID: id,
			Name: d.Name, Content: d.Content, Ttl: int32(d.TTL), Proxied: d.Proxied, Priority: int4(d.Priority)})
		if store.IsUniqueViolation(err) {
			return domain.Conflict("a %s record %s with this content already exists", d.Type, d.Name)
		}
		if err != nil {
			return fmt.Errorf("update dns record %s: %w", id, err)
		}
		return s.enqueue(ctx, tx, out)
	})
	if err != nil {
		return Record{}, err
	}
	return view(out), nil
}

// Delete marks a record deleting and queues its sync, which deletes it
// from Cloudflare if it still carries the marker (dns:write).
func (s *Service) Delete(ctx context.Context, p *domain.Principal, id uuid.UUID) (Record, error) {
	if err := need(p, domain.PermDNSWrite); err != nil {
		return Record{}, err
	}
	var out store.DnsRecord
	err := s.st.InTx(ctx, func(tx pgx.Tx) error {
		cur, err := s.q.LockDNSRecord(ctx, tx, store.LockDNSRecordParams{OrganizationID: p.OrgID, ID: id})
		if store.IsNoRows(err) || err == nil && cur.Status == StatusDeleted {
			return domain.NotFound("dns record")
		}
		if err != nil {
			return fmt.Errorf("delete dns record %s: %w", id, err)
		}
		if cur.Status == StatusDeleting {
			out = cur
			return nil
		}
		if out, err = s.q.MarkDNSRecordDeleting(ctx, tx, store.MarkDNSRecordDeletingParams{OrganizationID: p.OrgID, ID: id}); err != nil {
			return fmt.Errorf("delete dns record %s: %w", id, err)
		}
		return s.enqueue(ctx, tx, out)
	})
	if err != nil {
		return Record{}, err
	}
	return view(out), nil
}

// JobInfo answers a request that queued a job (202).
type JobInfo struct {
	JobID     int64  `json:"job_id"`
	Kind      string `json:"kind"`
	Duplicate bool   `json:"duplicate"`
}

// RequestReconcile queues a dns_reconcile of the organization now (dns:write).
func (s *Service) RequestReconcile(ctx context.Context, p *domain.Principal) (JobInfo, error) {
	if err := need(p, domain.PermDNSWrite); err != nil {
		return JobInfo{}, err
	}
	if s.queue == nil {
		return JobInfo{}, domain.Unavailable("the DNS queue is not running in this process")
	}
	var out JobInfo
	err := s.st.InTx(ctx, func(tx pgx.Tx) error {
		res, err := s.queue.InsertTx(ctx, tx, ReconcileArgs{OrganizationID: p.OrgID}, nil)
		if err != nil {
			return fmt.Errorf("queue dns reconcile: %w", err)
		}
		out = JobInfo{JobID: res.Job.ID, Kind: KindReconcile, Duplicate: res.UniqueSkippedAsDuplicate}
		return nil
	})
	return out, err
}

// LastReconcile answers the organization's latest reconcile report (dns:read).
func (s *Service) LastReconcile(ctx context.Context, p *domain.Principal) (Report, error) {
	if err := need(p, domain.PermDNSRead); err != nil {
		return Report{}, err
	}
	row, err := s.q.GetDNSReconcile(ctx, s.st.Pool, p.OrgID)
	if store.IsNoRows(err) {
		return Report{}, domain.NotFound("dns reconcile report (none yet: POST /v1/dns/reconcile runs one)")
	}
	if err != nil {
		return Report{}, fmt.Errorf("read dns reconcile report: %w", err)
	}
	var rep Report
	if err := json.Unmarshal(row.Report, &rep); err != nil {
		return Report{}, fmt.Errorf("decode dns reconcile report: %w", err)
	}
	return rep, nil
}
