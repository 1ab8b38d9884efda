// Package cloudflare is a local fake of the parts of Cloudflare's v4 API
// that shardform calls through cloudflare-go: token verification, zones
// (list and details) and DNS records (list with name/type filters and
// pagination through result_info, create, details, update (PUT), patch,
// delete), answered in Cloudflare's {success, errors, messages, result}
// envelope. It keeps each record's comment, refuses what Cloudflare refuses
// (a duplicate record: 81057; an A, AAAA or CNAME beside a CNAME of the same
// name: 81053; a name outside the zone), answers an unknown or revoked token
// with 401 and a token without access to a zone with 403, enforces a
// per-token rate limit with 429 and Retry-After, and can be told to fail the
// next requests (429, 5xx). Tests point SHARDFORM_CLOUDFLARE_ENDPOINT (or
// cloudflare.BaseURL) at URL, so the real client library is exercised.
package cloudflare

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// MaxPerPage is the largest page of DNS records the fake answers (a larger
// per_page is cut to it).
const MaxPerPage = 5000

// Record is a DNS record as the fake keeps it.
type Record struct {
	ID       string
	Type     string
	Name     string
	Content  string
	TTL      int
	Proxied  bool
	Priority *int
	Comment  string
}

// Fake is a running fake.
type Fake struct {
	URL string

	mu      sync.Mutex
	zones   map[string]*zone
	order   []string // zone ids in creation order
	tokens  map[string]*token
	faults  []fault
	calls   map[string]int
	total   int
	limited int // answers 429
	nextID  int
	limit   int           // requests per window per token; 0: none
	window  time.Duration // the rate limit's window
	windows map[string]*rateWindow
	now     func() time.Time
}

type zone struct {
	id, name string
	records  map[string]*Record
}

type token struct {
	revoked bool
	status  string          // what token verification answers; empty: active
	zones   map[string]bool // nil: every zone
}

type fault struct {
	status     int
	retryAfter time.Duration
	match      string // a call kind ("create_record"), empty: any call
}

type rateWindow struct {
	start time.Time
	n     int
}

// New starts a fake for the test's duration.
func New(t testing.TB) *Fake {
	t.Helper()
	f := NewUnstarted()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	f.URL = srv.URL
	return f
}

// NewUnstarted is a fake to serve with a server of one's own (ServeHTTP).
func NewUnstarted() *Fake {
	return &Fake{zones: map[string]*zone{}, tokens: map[string]*token{}, calls: map[string]int{},
		windows: map[string]*rateWindow{}, now: time.Now}
}

// AddZone adds a zone (id: 32 hex characters, as Cloudflare's).
func (f *Fake) AddZone(id, name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.zones[id] = &zone{id: id, name: strings.ToLower(name), records: map[string]*Record{}}
	f.order = append(f.order, id)
}

// AddToken accepts token for the zones named (none: every zone).
func (f *Fake) AddToken(tok string, zoneIDs ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := &token{}
	if len(zoneIDs) > 0 {
		t.zones = map[string]bool{}
		for _, z := range zoneIDs {
			t.zones[z] = true
		}
	}
	f.tokens[tok] = t
}

// SetTokenStatus makes token verification answer status for token
// ("disabled", "expired": Cloudflare still answers 200 for such a token's
// verification and refuses its other calls; this fake only tells).
func (f *Fake) SetTokenStatus(tok, status string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if t, ok := f.tokens[tok]; ok {
		t.status = status
	}
}

// RevokeToken makes every later request with token a 401.
func (f *Fake) RevokeToken(tok string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if t, ok := f.tokens[tok]; ok {
		t.revoked = true
	}
}

// SetRateLimit enforces n requests per window per token (Cloudflare's is
// 1,200 per 5 minutes); n 0 turns it off.
func (f *Fake) SetRateLimit(n int, window time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.limit, f.window = n, window
	clear(f.windows)
}

// FailNext makes the next n calls of kind (empty: any call) answer status;
// a 429 carries Retry-After.
func (f *Fake) FailNext(n int, kind string, status int, retryAfter time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for range n {
		f.faults = append(f.faults, fault{status: status, retryAfter: retryAfter, match: kind})
	}
}

// Put stores a record as if made outside shardform (in the dashboard, say)
// and returns its id. Name is fully qualified.
func (f *Fake) Put(zoneID string, r Record) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	z := f.zones[zoneID]
	if z == nil {
		panic("fake cloudflare: no zone " + zoneID)
	}
	if r.ID == "" {
		r.ID = f.newID()
	}
	if r.TTL == 0 || r.Proxied {
		r.TTL = 1
	}
	r.Name = strings.ToLower(r.Name)
	z.records[r.ID] = &r
	return r.ID
}

// PutMany stores many records at once (benchmarks).
func (f *Fake) PutMany(zoneID string, rs []Record) {
	for _, r := range rs {
		f.Put(zoneID, r)
	}
}

// Delete removes a record as if deleted outside shardform.
func (f *Fake) Delete(zoneID, id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.zones[zoneID].records, id)
}

// Change edits a record as if changed outside shardform.
func (f *Fake) Change(zoneID, id string, edit func(*Record)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r := f.zones[zoneID].records[id]; r != nil {
		edit(r)
	}
}

// Records is a zone's records, by name, type and content.
func (f *Fake) Records(zoneID string) []Record {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sorted(f.zones[zoneID])
}

// Find is the zone's records of a name (fully qualified) and type.
func (f *Fake) Find(zoneID, name, typ string) []Record {
	var out []Record
	for _, r := range f.Records(zoneID) {
		if r.Name == strings.ToLower(name) && r.Type == typ {
			out = append(out, r)
		}
	}
	return out
}

// Calls is the number of API calls answered (refused ones included).
func (f *Fake) Calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.total
}

// CallsOf is the number of calls of one kind: verify, list_zones, get_zone,
// list_records, get_record, create_record, update_record (PUT),
// patch_record, delete_record.
func (f *Fake) CallsOf(kind string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[kind]
}

// Refused429 is the number of calls answered 429.
func (f *Fake) Refused429() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.limited
}

// ResetCalls sets the counters back to zero.
func (f *Fake) ResetCalls() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.total, f.limited = 0, 0
	clear(f.calls)
}

func (f *Fake) newID() string {
	f.nextID++
	return fmt.Sprintf("%032x", f.nextID)
}

func (f *Fake) sorted(z *zone) []Record {
	out := make([]Record, 0, len(z.records))
	for _, r := range z.records {
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		if a.Type != b.Type {
			return a.Type < b.Type
		}
		if a.Content != b.Content {
			return a.Content < b.Content
		}
		return a.ID < b.ID
	})
	return out
}

// Envelope parts.
type cfError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

type resultInfo struct {
	Page       int `json:"page"`
	PerPage    int `json:"per_page"`
	Count      int `json:"count"`
	TotalCount int `json:"total_count"`
	TotalPages int `json:"total_pages"`
}

type wireRecord struct {
	ID         string         `json:"id"`
	ZoneID     string         `json:"zone_id"`
	ZoneName   string         `json:"zone_name"`
	Type       string         `json:"type"`
	Name       string         `json:"name"`
	Content    string         `json:"content"`
	TTL        int            `json:"ttl"`
	Proxied    bool           `json:"proxied"`
	Proxiable  bool           `json:"proxiable"`
	Priority   *int           `json:"priority,omitempty"`
	Comment    *string        `json:"comment,omitempty"`
	Data       map[string]any `json:"data,omitempty"`
	Tags       []string       `json:"tags"`
	CreatedOn  string         `json:"created_on"`
	ModifiedOn string         `json:"modified_on"`
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

func ok(w http.ResponseWriter, result any, info *resultInfo) {
	body := map[string]any{"success": true, "errors": []any{}, "messages": []any{}, "result": result}
	if info != nil {
		body["result_info"] = info
	}
	writeJSON(w, http.StatusOK, body)
}

func fail(w http.ResponseWriter, status, code int, msg string) {
	writeJSON(w, status, map[string]any{"success": false, "errors": []cfError{{Code: code, Message: msg}}, "messages": []any{}, "result": nil})
}

// kindOf names a call for the counters, from its method and path.
func kindOf(method string, parts []string) string {
	switch {
	case len(parts) == 3 && parts[0] == "user" && parts[1] == "tokens" && parts[2] == "verify":
		return "verify"
	case len(parts) == 1 && parts[0] == "zones":
		return "list_zones"
	case len(parts) == 2 && parts[0] == "zones":
		return "get_zone"
	case len(parts) == 3 && parts[0] == "zones" && parts[2] == "dns_records":
		if method == http.MethodPost {
			return "create_record"
		}
		return "list_records"
	case len(parts) == 4 && parts[0] == "zones" && parts[2] == "dns_records":
		switch method {
		case http.MethodPut:
			return "update_record"
		case http.MethodPatch:
			return "patch_record"
		case http.MethodDelete:
			return "delete_record"
		}
		return "get_record"
	}
	return "unknown"
}

// ServeHTTP answers one API call.
func (f *Fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	// The API's base may carry /client/v4.
	if len(parts) >= 2 && parts[0] == "client" && parts[1] == "v4" {
		parts = parts[2:]
	}
	kind := kindOf(r.Method, parts)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.total++
	f.calls[kind]++
	tokStr := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	tok, known := f.tokens[tokStr]
	if !known || tok.revoked {
		fail(w, http.StatusUnauthorized, 1000, "Invalid API Token")
		return
	}
	if f.limit > 0 {
		win := f.windows[tokStr]
		now := f.now()
		if win == nil || now.Sub(win.start) >= f.window {
			win = &rateWindow{start: now}
			f.windows[tokStr] = win
		}
		win.n++
		if win.n > f.limit {
			f.limited++
			wait := win.start.Add(f.window).Sub(now)
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
			fail(w, http.StatusTooManyRequests, 971, "Please wait and consider throttling your request speed")
			return
		}
	}
	for i, ft := range f.faults {
		if ft.match != "" && ft.match != kind {
			continue
		}
		f.faults = slices.Delete(f.faults, i, i+1)
		if ft.status == http.StatusTooManyRequests {
			f.limited++
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(ft.retryAfter.Seconds()))))
			fail(w, ft.status, 971, "Please wait and consider throttling your request speed")
			return
		}
		fail(w, ft.status, 10000+ft.status, http.StatusText(ft.status))
		return
	}
	switch kind {
	case "verify":
		status := tok.status
		if status == "" {
			status = "active"
		}
		ok(w, map[string]any{"id": "f267e341f3dd4697bd3b9f71dd96247f", "status": status}, nil)
	case "list_zones":
		f.listZones(w, r, tok)
	case "get_zone":
		if z := f.zoneFor(w, tok, parts[1]); z != nil {
			ok(w, zoneJSON(z), nil)
		}
	case "list_records":
		if z := f.zoneFor(w, tok, parts[1]); z != nil {
			f.listRecords(w, r, z)
		}
	case "create_record":
		if z := f.zoneFor(w, tok, parts[1]); z != nil {
			f.createRecord(w, r, z)
		}
	case "get_record", "update_record", "patch_record", "delete_record":
		z := f.zoneFor(w, tok, parts[1])
		if z == nil {
			return
		}
		rec := z.records[parts[3]]
		if rec == nil {
			fail(w, http.StatusNotFound, 81044, "Record does not exist.")
			return
		}
		switch kind {
		case "get_record":
			ok(w, wire(z, rec), nil)
		case "delete_record":
			delete(z.records, rec.ID)
			ok(w, map[string]any{"id": rec.ID}, nil)
		default:
			f.writeRecord(w, r, z, rec, kind == "patch_record")
		}
	default:
		fail(w, http.StatusNotFound, 7003, "Could not route to "+r.URL.Path+", perhaps your object identifier is invalid?")
	}
}

func zoneJSON(z *zone) map[string]any {
	return map[string]any{"id": z.id, "name": z.name, "status": "active", "paused": false, "type": "full"}
}

// zoneFor is the zone if the token may use it; otherwise it answers the
// error (403 without access, 404 for no such zone) and returns nil.
func (f *Fake) zoneFor(w http.ResponseWriter, tok *token, id string) *zone {
	z := f.zones[id]
	if tok.zones != nil && !tok.zones[id] {
		fail(w, http.StatusForbidden, 10000, "Authentication error")
		return nil
	}
	if z == nil {
		fail(w, http.StatusNotFound, 7003, "Could not route to /zones/"+id+", perhaps your object identifier is invalid?")
		return nil
	}
	return z
}

// pageOf reads page and per_page (default 1 and def, at most max).
func pageOf(r *http.Request, def, max int) (page, per int) {
	page, per = 1, def
	if v, err := strconv.Atoi(r.URL.Query().Get("page")); err == nil && v > 0 {
		page = v
	}
	if v, err := strconv.Atoi(r.URL.Query().Get("per_page")); err == nil && v > 0 {
		per = min(v, max)
	}
	return page, per
}

func paginate[T any](items []T, page, per int) ([]T, *resultInfo) {
	total := len(items)
	pages := (total + per - 1) / per
	lo := min((page-1)*per, total)
	hi := min(lo+per, total)
	return items[lo:hi], &resultInfo{Page: page, PerPage: per, Count: hi - lo, TotalCount: total, TotalPages: pages}
}

func (f *Fake) listZones(w http.ResponseWriter, r *http.Request, tok *token) {
	name := strings.ToLower(r.URL.Query().Get("name"))
	var zs []map[string]any
	for _, id := range f.order {
		z := f.zones[id]
		if (tok.zones != nil && !tok.zones[id]) || (name != "" && z.name != name) {
			continue
		}
		zs = append(zs, zoneJSON(z))
	}
	page, per := pageOf(r, 20, 50)
	out, info := paginate(zs, page, per)
	if out == nil {
		out = []map[string]any{}
	}
	ok(w, out, info)
}

func (f *Fake) listRecords(w http.ResponseWriter, r *http.Request, z *zone) {
	q := r.URL.Query()
	name, typ := strings.ToLower(strings.TrimSuffix(q.Get("name"), ".")), q.Get("type")
	var recs []wireRecord
	for _, rec := range f.sorted(z) {
		if (name != "" && rec.Name != name) || (typ != "" && rec.Type != typ) {
			continue
		}
		recs = append(recs, wire(z, &rec))
	}
	page, per := pageOf(r, 100, MaxPerPage)
	out, info := paginate(recs, page, per)
	if out == nil {
		out = []wireRecord{}
	}
	ok(w, out, info)
}

func wire(z *zone, r *Record) wireRecord {
	out := wireRecord{ID: r.ID, ZoneID: z.id, ZoneName: z.name, Type: r.Type, Name: r.Name, Content: r.Content, TTL: r.TTL,
		Proxied: r.Proxied, Proxiable: proxiable(r.Type), Priority: r.Priority, Tags: []string{},
		CreatedOn: "2026-12-01T00:00:00Z", ModifiedOn: "2026-12-01T00:00:00Z"}
	if r.Comment != "" {
		c := r.Comment
		out.Comment = &c
	}
	if r.Type == "SRV" {
		f := strings.Fields(r.Content)
		// Cloudflare answers an SRV record's content with tabs: "weight\tport\ttarget".
		out.Content = strings.Join(f, "\t")
		if len(f) == 3 && r.Priority != nil {
			weight, _ := strconv.Atoi(f[0])
			port, _ := strconv.Atoi(f[1])
			out.Data = map[string]any{"priority": *r.Priority, "weight": weight, "port": port, "target": f[2]}
		}
	}
	return out
}

func proxiable(typ string) bool { return typ == "A" || typ == "AAAA" || typ == "CNAME" }

// body is a create, update or patch body (cloudflare-go's params).
type body struct {
	Type     *string         `json:"type"`
	Name     *string         `json:"name"`
	Content  *string         `json:"content"`
	TTL      *int            `json:"ttl"`
	Proxied  *bool           `json:"proxied"`
	Priority *int            `json:"priority"`
	Comment  *string         `json:"comment"`
	Data     json.RawMessage `json:"data"`
}

// contentOf is the record's content from the body: SRV and CAA may come as
// data, as Cloudflare takes them.
func contentOf(b body, typ string) (string, *int, error) {
	content := ""
	if b.Content != nil {
		content = *b.Content
	}
	prio := b.Priority
	if len(b.Data) > 0 && string(b.Data) != "null" {
		var d struct {
			Priority *int   `json:"priority"`
			Weight   *int   `json:"weight"`
			Port     *int   `json:"port"`
			Target   string `json:"target"`
			Flags    *int   `json:"flags"`
			Tag      string `json:"tag"`
			Value    string `json:"value"`
		}
		if err := json.Unmarshal(b.Data, &d); err != nil {
			return "", nil, err
		}
		switch typ {
		case "SRV":
			if d.Weight == nil || d.Port == nil || d.Target == "" || d.Priority == nil {
				return "", nil, fmt.Errorf("SRV data needs priority, weight, port and target")
			}
			content = fmt.Sprintf("%d %d %s", *d.Weight, *d.Port, strings.TrimSuffix(strings.ToLower(d.Target), "."))
			prio = d.Priority
		case "CAA":
			if d.Flags == nil || d.Tag == "" {
				return "", nil, fmt.Errorf("CAA data needs flags, tag and value")
			}
			content = fmt.Sprintf("%d %s %q", *d.Flags, d.Tag, d.Value)
		}
	}
	return content, prio, nil
}

// fqdn is a record name as Cloudflare stores it: lowercase, fully
// qualified within the zone ("@" and relative names completed).
func fqdn(z *zone, name string) (string, bool) {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	switch {
	case name == "@" || name == z.name:
		return z.name, true
	case strings.HasSuffix(name, "."+z.name):
		return name, true
	case name == "" || strings.Contains(name, " "):
		return "", false
	}
	return name + "." + z.name, true
}

// conflict is Cloudflare's refusal of rec beside the zone's records (other
// than itself), if any.
func conflict(z *zone, rec *Record) (int, string) {
	for _, o := range z.records {
		if o.ID == rec.ID || o.Name != rec.Name {
			continue
		}
		if o.Type == rec.Type && o.Content == rec.Content {
			return 81057, "Record already exists."
		}
		if (o.Type == "CNAME" && proxiable(rec.Type)) || (rec.Type == "CNAME" && proxiable(o.Type)) {
			return 81053, "An A, AAAA, or CNAME record with that host already exists."
		}
	}
	return 0, ""
}

func (f *Fake) decode(w http.ResponseWriter, r *http.Request) (body, bool) {
	var b body
	if err := json.NewDecoder(r.Body).Decode(&b); err != nil {
		fail(w, http.StatusBadRequest, 9207, "Request body is invalid.")
		return b, false
	}
	return b, true
}

// apply sets the body's fields on rec (all of them for a create or a PUT,
// those present for a PATCH) and checks the result as Cloudflare would.
func apply(z *zone, rec *Record, b body, partial bool) (int, string) {
	if b.Type != nil {
		rec.Type = strings.ToUpper(*b.Type)
	} else if !partial {
		return 9000, "DNS record type is invalid."
	}
	switch rec.Type {
	case "A", "AAAA", "CNAME", "TXT", "MX", "SRV", "CAA", "NS":
	default:
		return 9000, "DNS record type is invalid."
	}
	if b.Name != nil {
		name, valid := fqdn(z, *b.Name)
		if !valid || !(name == z.name || strings.HasSuffix(name, "."+z.name)) {
			return 9005, "DNS name is invalid."
		}
		rec.Name = name
	} else if !partial {
		return 9005, "DNS name is invalid."
	}
	if b.Content != nil || len(b.Data) > 0 || !partial {
		content, prio, err := contentOf(b, rec.Type)
		if err != nil {
			return 1004, "DNS Validation Error: " + err.Error()
		}
		if content == "" {
			return 9021, "Content for " + rec.Type + " record is invalid."
		}
		rec.Content = content
		if prio != nil {
			p := *prio
			rec.Priority = &p
		}
	}
	if b.Priority != nil {
		p := *b.Priority
		rec.Priority = &p
	}
	if (rec.Type == "MX" || rec.Type == "SRV") && rec.Priority == nil {
		return 1004, "DNS Validation Error: priority is required for " + rec.Type + " records."
	}
	if b.TTL != nil {
		rec.TTL = *b.TTL
	} else if !partial {
		rec.TTL = 1
	}
	if rec.TTL == 0 {
		rec.TTL = 1
	}
	if rec.TTL != 1 && (rec.TTL < 30 || rec.TTL > 86400) {
		return 9016, "TTL must be between 30 and 86400 seconds, or 1 for Automatic."
	}
	if b.Proxied != nil {
		rec.Proxied = *b.Proxied
	} else if !partial {
		rec.Proxied = false
	}
	if rec.Proxied && !proxiable(rec.Type) {
		return 9004, "This record type cannot be proxied."
	}
	if rec.Proxied {
		rec.TTL = 1 // Cloudflare keeps every proxied record's TTL automatic, whatever was sent
	}
	if b.Comment != nil {
		rec.Comment = *b.Comment
	} else if !partial {
		rec.Comment = ""
	}
	if len(rec.Comment) > 100 {
		return 9911, "DNS record comment must be at most 100 characters."
	}
	return conflict(z, rec)
}

func (f *Fake) createRecord(w http.ResponseWriter, r *http.Request, z *zone) {
	b, valid := f.decode(w, r)
	if !valid {
		return
	}
	rec := &Record{}
	if code, msg := apply(z, rec, b, false); code != 0 {
		fail(w, http.StatusBadRequest, code, msg)
		return
	}
	rec.ID = f.newID()
	z.records[rec.ID] = rec
	ok(w, wire(z, rec), nil)
}

func (f *Fake) writeRecord(w http.ResponseWriter, r *http.Request, z *zone, rec *Record, partial bool) {
	b, valid := f.decode(w, r)
	if !valid {
		return
	}
	next := *rec
	if code, msg := apply(z, &next, b, partial); code != 0 {
		fail(w, http.StatusBadRequest, code, msg)
		return
	}
	*rec = next
	ok(w, wire(z, rec), nil)
}
