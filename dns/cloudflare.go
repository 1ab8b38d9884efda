package dns

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudflare/cloudflare-go"
	"github.com/google/uuid"

	"github.com/shardform/shardform/ratelimit"
)

// markerPrefix starts every ownership marker: the record's comment in
// Cloudflare is "shardform:<organization id>:<record id>".
const markerPrefix = "shardform:"

// Marker is the comment shardform puts on a record it manages.
func Marker(org, record uuid.UUID) string { return markerPrefix + org.String() + ":" + record.String() }

// parseMarker reads a comment: whether it is a shardform marker, and for
// which organization and record.
func parseMarker(comment string) (org, record uuid.UUID, ok bool) {
	rest, found := strings.CutPrefix(strings.TrimSpace(comment), markerPrefix)
	if !found {
		return uuid.Nil, uuid.Nil, false
	}
	o, r, found := strings.Cut(rest, ":")
	if !found {
		return uuid.Nil, uuid.Nil, false
	}
	var err error
	if org, err = uuid.Parse(o); err != nil {
		return uuid.Nil, uuid.Nil, false
	}
	if record, err = uuid.Parse(r); err != nil {
		return uuid.Nil, uuid.Nil, false
	}
	return org, record, true
}

// ownedBy reports whether a comment is a marker of the organization.
func ownedBy(comment string, org uuid.UUID) bool {
	o, _, ok := parseMarker(comment)
	return ok && o == org
}

// Error kinds of a Cloudflare call.
var (
	// ErrRefused: Cloudflare refused the credential (401 or 403): no retry
	// helps until it is replaced.
	ErrRefused = errors.New("cloudflare refused the credential")
	// errRateLimited: 429; retry after RetryAfter.
	errRateLimited = errors.New("rate limited by cloudflare")
	// errTransient: 5xx or the network; retry with backoff.
	errTransient = errors.New("cloudflare is unavailable")
	// errNotFound: 404.
	errNotFound = errors.New("not found in cloudflare")
)

// cfError is a classified Cloudflare failure with Cloudflare's own message.
type cfError struct {
	kind       error
	msg        string
	codes      []int
	retryAfter time.Duration
}

func (e *cfError) Error() string { return e.msg }
func (e *cfError) Unwrap() error { return e.kind }

func (e *cfError) hasCode(code int) bool {
	for _, c := range e.codes {
		if c == code {
			return true
		}
	}
	return false
}

// transport counts calls, takes each call from the token's budget in
// Postgres (shared by every process) and remembers the last answer's
// status and Retry-After (cloudflare-go does not return them), one per
// client, so one job's calls are read in order.
type transport struct {
	base    http.RoundTripper
	budget  *budget
	key     string // the token's budget key
	counter func()
	n       atomic.Int64 // calls made through this client

	mu         sync.Mutex
	lastStatus int
	retryAfter time.Duration
}

func (t *transport) RoundTrip(r *http.Request) (*http.Response, error) {
	if err := t.budget.take(r.Context(), t.key); err != nil {
		t.mu.Lock()
		t.lastStatus, t.retryAfter = 0, 0
		t.mu.Unlock()
		return nil, err
	}
	t.n.Add(1)
	if t.counter != nil {
		t.counter()
	}
	resp, err := t.base.RoundTrip(r)
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lastStatus, t.retryAfter = 0, 0
	if err == nil {
		t.lastStatus = resp.StatusCode
		if resp.StatusCode == http.StatusTooManyRequests {
			t.retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"))
		}
	}
	return resp, err
}

// parseRetryAfter reads Retry-After in seconds (or an HTTP date); 0 when absent.
func parseRetryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}

// client is one job's (or request's) Cloudflare API client.
type client struct {
	api *cloudflare.API
	tr  *transport
}

// callTimeout bounds one call to Cloudflare.
const callTimeout = 30 * time.Second

// budget is the per-token Cloudflare rate limit, counted in Postgres
// (ratelimit's fixed windows), so every API and worker process calling
// Cloudflare with a token shares one budget. Cloudflare's own window is
// not aligned with ours, so the window is counted in slots of a tenth: at
// most limit/11 calls per slot keeps any stretch of one window (which
// overlaps at most 11 slots) within the limit.
type budget struct {
	lim     *ratelimit.Limiter
	now     func() time.Time
	slot    time.Duration
	perSlot int
}

// slots is how many slots a window is counted in.
const slots = 10

// maxLocalWait is the longest a call waits in place for the next slot;
// a longer wait is a rate-limited error (a job snoozes, the API answers 503).
const maxLocalWait = time.Second

func newBudget(lim *ratelimit.Limiter, now func() time.Time, limit int, window time.Duration) *budget {
	n := slots
	for n > 1 && limit/(n+1) < 1 {
		n-- // a small limit: fewer, longer slots
	}
	return &budget{lim: lim, now: now, slot: window / time.Duration(n), perSlot: max(1, limit/(n+1))}
}

// budgetKey is the rate-limit key of a token: never the token itself.
func budgetKey(token string) string {
	sum := sha256.Sum256([]byte(token))
	return "cf:" + hex.EncodeToString(sum[:])
}

// rateLimitedError is a call shardform did not make: the token's budget
// is spent until retryAfter.
type rateLimitedError struct{ retryAfter time.Duration }

func (e *rateLimitedError) Error() string {
	return "the token's Cloudflare rate limit (SHARDFORM_DNS_RATE_LIMIT) is used up for " + e.retryAfter.String()
}

// take counts one call against key's budget: within it, it returns nil;
// over it, it waits for the next slot when that is near, otherwise it
// returns a *rateLimitedError.
func (b *budget) take(ctx context.Context, key string) error {
	if b == nil {
		return nil
	}
	for {
		res, err := b.lim.Hit(ctx, key, b.perSlot, b.slot)
		if err != nil {
			return err
		}
		if res.Allowed {
			return nil
		}
		wait := res.Reset.Sub(b.now())
		if wait > maxLocalWait {
			return &rateLimitedError{retryAfter: wait}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(max(wait, time.Millisecond)):
		}
	}
}

// newClient builds a cloudflare-go client for token. cloudflare-go's own
// retries are off (River retries, honouring Retry-After) and its own rate
// limiter is opened wide (the per-token budget in the transport, shared
// through Postgres, is the one that counts).
func (s *Service) newClient(token string) (*client, error) {
	tr := &transport{base: http.DefaultTransport, budget: s.budget, key: budgetKey(token), counter: s.countCall}
	opts := []cloudflare.Option{
		cloudflare.HTTPClient(&http.Client{Timeout: callTimeout, Transport: tr}),
		cloudflare.UsingRetryPolicy(0, 1, 1),
		cloudflare.UsingRateLimit(1e6),
		cloudflare.UserAgent("shardform"),
	}
	if s.opts.Endpoint != "" {
		opts = append(opts, cloudflare.BaseURL(s.opts.Endpoint))
	}
	api, err := cloudflare.NewWithAPIToken(token, opts...)
	if err != nil {
		return nil, fmt.Errorf("cloudflare client: %w", err)
	}
	return &client{api: api, tr: tr}, nil
}

// calls is the number of API calls made through the client.
func (c *client) calls() int { return int(c.tr.n.Load()) }

// classify turns a cloudflare-go error into a *cfError whose kind says
// what to do: ErrRefused, errRateLimited, errTransient, errNotFound, or
// nil kind for a request Cloudflare refused (bad input, a conflict).
func (c *client) classify(op string, err error) error {
	if err == nil {
		return nil
	}
	c.tr.mu.Lock()
	status, retryAfter := c.tr.lastStatus, c.tr.retryAfter
	c.tr.mu.Unlock()
	var cfe *cloudflare.Error
	var authz *cloudflare.AuthorizationError
	var authn *cloudflare.AuthenticationError
	var nf *cloudflare.NotFoundError
	var rl *cloudflare.RatelimitError
	var req *cloudflare.RequestError
	out := &cfError{msg: "cloudflare: " + op + ": " + err.Error()}
	var local *rateLimitedError
	if errors.As(err, &local) {
		// Not sent: the budget shared by every process is spent.
		return &cfError{kind: errRateLimited, msg: "cloudflare: " + op + ": " + local.Error(), retryAfter: local.retryAfter}
	}
	switch {
	case errors.As(err, &authz), errors.As(err, &authn):
		out.kind = ErrRefused
	case errors.As(err, &nf):
		out.kind = errNotFound
	case errors.As(err, &rl) || status == http.StatusTooManyRequests:
		out.kind = errRateLimited
		out.msg = "cloudflare: " + op + ": rate limited (429)"
		if retryAfter > 0 {
			out.msg += ", retry after " + retryAfter.String()
		}
	case errors.As(err, &req):
	default:
		// 5xx (cloudflare-go's ServiceError, or its "please try again
		// later" after no retries), the network, a timeout.
		out.kind = errTransient
	}
	if errors.As(err, &cfe) {
		out.codes = cfe.ErrorCodes
	}
	out.retryAfter = retryAfter
	return out
}

// kindOf is the error's classification (nil for none or a refused request).
func kindOf(err error) error {
	var e *cfError
	if errors.As(err, &e) {
		return e.kind
	}
	return nil
}

// zoneRC is the resource container of a zone.
func zoneRC(zoneID string) *cloudflare.ResourceContainer { return cloudflare.ZoneIdentifier(zoneID) }

// listPageSize is how many records one list call asks for.
const listPageSize = 5000

// listRecords reads a zone's records (of one name and type when given), page by page.
func (c *client) listRecords(ctx context.Context, zoneID, name, typ string) ([]cloudflare.DNSRecord, int, error) {
	var out []cloudflare.DNSRecord
	calls := 0
	for page := 1; ; page++ {
		ctx, cancel := context.WithTimeout(ctx, callTimeout)
		recs, info, err := c.api.ListDNSRecords(ctx, zoneRC(zoneID), cloudflare.ListDNSRecordsParams{
			Name: name, Type: typ, ResultInfo: cloudflare.ResultInfo{Page: page, PerPage: listPageSize}})
		cancel()
		calls++
		if err != nil {
			return nil, calls, c.classify("list dns records", err)
		}
		out = append(out, recs...)
		if info == nil || page >= info.TotalPages || len(recs) == 0 {
			return out, calls, nil
		}
	}
}

// priorityOf is a Cloudflare record's priority as an int pointer.
func priorityOf(r cloudflare.DNSRecord) *int {
	if r.Priority == nil {
		return nil
	}
	p := int(*r.Priority)
	return &p
}

func uint16Ptr(p *int) *uint16 {
	if p == nil {
		return nil
	}
	v := uint16(*p)
	return &v
}

// dataOf is the data Cloudflare takes for SRV and CAA records.
func dataOf(d Desired) any {
	switch d.Type {
	case "SRV":
		return srvData(d.Content, d.Priority)
	case "CAA":
		return caaData(d.Content)
	}
	return nil
}

// same reports whether Cloudflare's record already is the desired one.
func same(r cloudflare.DNSRecord, d Desired, comment string) bool {
	proxied := r.Proxied != nil && *r.Proxied
	return r.Type == d.Type && strings.EqualFold(strings.TrimSuffix(r.Name, "."), d.Name) && sameContent(d.Type, r.Content, d.Content) &&
		r.TTL == effectiveTTL(d.TTL, d.Proxied) && proxied == d.Proxied && samePriority(priorityOf(r), d.Priority, d.Type) && r.Comment == comment
}

func sameContent(typ, a, b string) bool {
	a, b = normContent(typ, a), normContent(typ, b)
	switch typ {
	case "CNAME", "MX", "SRV":
		return strings.EqualFold(strings.TrimSuffix(a, "."), strings.TrimSuffix(b, "."))
	}
	return a == b
}

// normContent is SRV and CAA content with its fields separated by one
// space: Cloudflare answers SRV content with tabs ("1\t5061\ttarget").
func normContent(typ, s string) string {
	if typ == "SRV" || typ == "CAA" {
		return strings.Join(strings.Fields(s), " ")
	}
	return s
}

// effectiveTTL is the TTL Cloudflare keeps: 1 (automatic) for a proxied record.
func effectiveTTL(ttl int, proxied bool) int {
	if proxied {
		return 1
	}
	return ttl
}

func samePriority(a, b *int, typ string) bool {
	if typ != "MX" && typ != "SRV" {
		return true
	}
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

func (c *client) create(ctx context.Context, zoneID string, d Desired, comment string) (cloudflare.DNSRecord, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	proxied := d.Proxied
	p := cloudflare.CreateDNSRecordParams{Type: d.Type, Name: d.Name, TTL: d.TTL, Proxied: &proxied,
		Priority: uint16Ptr(d.Priority), Comment: comment}
	if data := dataOf(d); data != nil {
		p.Data = data
	} else {
		p.Content = d.Content
	}
	r, err := c.api.CreateDNSRecord(ctx, zoneRC(zoneID), p)
	return r, c.classify("create "+d.Type+" "+d.Name, err)
}

func (c *client) update(ctx context.Context, zoneID, id string, d Desired, comment string) (cloudflare.DNSRecord, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	proxied := d.Proxied
	p := cloudflare.UpdateDNSRecordParams{ID: id, Type: d.Type, Name: d.Name, TTL: d.TTL, Proxied: &proxied,
		Priority: uint16Ptr(d.Priority), Comment: &comment, Tags: []string{}}
	if data := dataOf(d); data != nil {
		p.Data = data
	} else {
		p.Content = d.Content
	}
	r, err := c.api.UpdateDNSRecord(ctx, zoneRC(zoneID), p)
	return r, c.classify("update "+d.Type+" "+d.Name, err)
}

func (c *client) get(ctx context.Context, zoneID, id string) (cloudflare.DNSRecord, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	r, err := c.api.GetDNSRecord(ctx, zoneRC(zoneID), id)
	return r, c.classify("get record "+id, err)
}

func (c *client) delete(ctx context.Context, zoneID, id string) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	return c.classify("delete record "+id, c.api.DeleteDNSRecord(ctx, zoneRC(zoneID), id))
}

// listZones reads every zone the token can see (cloudflare-go reads every page).
func (c *client) listZones(ctx context.Context) ([]Zone, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	res, err := c.api.ListZonesContext(ctx)
	if err != nil {
		return nil, c.classify("list zones", err)
	}
	out := make([]Zone, 0, len(res.Result))
	for _, z := range res.Result {
		out = append(out, Zone{ID: z.ID, Name: z.Name, Status: z.Status})
	}
	return out, nil
}
