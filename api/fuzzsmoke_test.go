package api_test

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/google/uuid"
	"golang.org/x/crypto/ssh"

	cffake "github.com/shardform/shardform/internal/fake/cloudflare"
)

// evilStrings are the string values the smoke sends in place of a field,
// a query value or a path parameter: NUL and other control characters,
// bidirectional controls, huge and odd-looking values, every non-canonical
// form of an id.
func evilStrings() []string {
	id := "6ba7b810-9dad-11d1-80b4-00c04fd430c8"
	return []string{
		"a\x00b", "\x00", strings.Repeat("\x00", 1000), "evil\u202Etxt.exe", "\u2066x\u2069", "\u200F", "\x1b[31mred", "a\r\nb", "\t",
		"\u0085", "\u2028", "\x7f", "", " ", strings.Repeat("a", 256), strings.Repeat("a", 70_000), strings.Repeat("é", 300_000),
		"%s%n%x", "' OR 1=1 --", "../../etc/passwd", "😀👩‍💻", strings.Repeat("😀", 100), "\ufeff", "\ufffd",
		strings.ToUpper(id), "{" + id + "}", "urn:uuid:" + id, strings.ReplaceAll(id, "-", ""), id + "\x00", "00000000-0000-0000-0000-000000000000",
	}
}

// evilValues are JSON values of the wrong type, huge numbers and deep nesting.
func evilValues() []json.RawMessage {
	return []json.RawMessage{
		json.RawMessage(`0`), json.RawMessage(`-1`), json.RawMessage(`1.5`), json.RawMessage(`1e308`), json.RawMessage(`-1e308`),
		json.RawMessage(`9223372036854775808`), json.RawMessage(`18446744073709551616`), json.RawMessage(`1e400`),
		json.RawMessage(`true`), json.RawMessage(`null`), json.RawMessage(`[]`), json.RawMessage(`{}`), json.RawMessage(`["x"]`),
		json.RawMessage(`{"a":"b"}`), json.RawMessage(`{"\u0000":"x"}`), json.RawMessage(`"\u0000"`), json.RawMessage(`"\ud800"`),
		json.RawMessage(strings.Repeat("[", 5000) + strings.Repeat("]", 5000)),
		json.RawMessage(strings.Repeat(`{"a":`, 3000) + `1` + strings.Repeat("}", 3000)),
	}
}

// smokeFixture is what the smoke's requests refer to.
type smokeFixture struct {
	admin              account
	credID, provID     string
	publicKey          string
	strings            []string
	values             []json.RawMessage
	rng                *mrand.Rand
	maxBody, requestsN int
}

// baseValue is a valid value for a body property, so that a request whose
// one field is mutated gets past the others.
func (f *smokeFixture) baseValue(path, name string) (any, bool) {
	switch name {
	case "email":
		return "fuzz@example.com", true
	case "password", "new_password":
		return testPassword + "!", true
	case "current_password":
		return "wrong password, long enough", true
	case "name":
		if strings.HasPrefix(path, "/v1/credentials") || strings.HasPrefix(path, "/v1/organizations") || strings.HasPrefix(path, "/v1/api-tokens") {
			return "Fuzz name", true
		}
		return "fuzz-1", true
	case "provider":
		if strings.HasPrefix(path, "/v1/credentials") {
			return "hetzner", true
		}
		return "local", true
	case "region":
		return "local", true
	case "instance_type":
		return "local-small", true
	case "public_key":
		return f.publicKey, true
	case "ssh_keys":
		return []string{f.publicKey}, true
	case "principals", "allowed_principals":
		return []string{"admin"}, true
	case "credential_id":
		return f.credID, true
	case "node_id":
		return uuid.NewString(), true
	case "labels":
		return map[string]string{"env": "prod"}, true
	case "secret":
		return map[string]string{"token": strings.Repeat("t", 64)}, true
	case "template":
		return "valheim", true
	case "role":
		return "member", true
	case "grants", "scopes":
		return []string{"nodes:read"}, true
	case "algorithm":
		return "ed25519", true
	case "currency":
		return "EUR", true
	case "strategy":
		return "binpack", true
	case "allowed_key_types":
		return []string{"ssh-ed25519"}, true
	case "extensions":
		return []string{"permit-pty"}, true
	case "max_monthly_price":
		return "100", true
	case "status":
		return "ready", true
	case "default_validity_hours":
		return 8, true
	case "max_validity_hours":
		return 24, true
	case "validity_hours", "cpu", "memory_gb", "disk_gb", "count":
		return 1, true
	case "players":
		return 10, true
	case "expires_in":
		return 3600, true
	}
	return nil, false
}

// sample is a value of schema s, or nil.
func (f *smokeFixture) sample(s *openapi3.Schema) any {
	if s == nil {
		return nil
	}
	if len(s.Enum) > 0 {
		return s.Enum[0]
	}
	for _, alt := range append(slices.Clone(s.AnyOf), s.OneOf...) {
		if alt.Value != nil && (alt.Value.Type == nil || !alt.Value.Type.Is("null")) {
			return f.sample(alt.Value)
		}
	}
	switch {
	case s.Type == nil:
		return nil
	case s.Type.Includes("object"):
		out := map[string]any{}
		for name, p := range s.Properties {
			out[name] = f.sample(p.Value)
		}
		if ap := s.AdditionalProperties.Schema; ap != nil && len(s.Properties) == 0 {
			out["k"] = f.sample(ap.Value)
		}
		return out
	case s.Type.Includes("array"):
		if s.Items == nil {
			return []any{}
		}
		return []any{f.sample(s.Items.Value)}
	case s.Type.Includes("string"):
		if s.Format == "uuid" {
			return uuid.NewString()
		}
		return "x"
	case s.Type.Includes("integer"), s.Type.Includes("number"):
		return 1
	case s.Type.Includes("boolean"):
		return false
	}
	return nil
}

// body is a valid-looking body of the operation's schema, property by property.
func (f *smokeFixture) body(path string, s *openapi3.Schema) map[string]any {
	out := map[string]any{}
	for name, p := range s.Properties {
		if v, ok := f.baseValue(path, name); ok {
			out[name] = v
		} else {
			out[name] = f.sample(p.Value)
		}
	}
	return out
}

// smokeRequest is one mutated request.
type smokeRequest struct {
	method, path, rawQuery string
	body                   []byte
	contentType            string
	header                 map[string]string
	what                   string // the mutation, for the failure message
}

func (f *smokeFixture) pick() string { return f.strings[f.rng.IntN(len(f.strings))] }

// headerSafe reports whether s can travel in an HTTP header.
func headerSafe(s string) bool {
	for i := 0; i < len(s); i++ {
		if (s[i] < 0x20 && s[i] != '\t') || s[i] == 0x7f {
			return false
		}
	}
	return len(s) < 4096
}

// pathValues fills the path parameters: the fixture's real ids where the
// route has one (never for DELETE, so the smoke keeps its organization), a
// random canonical id elsewhere.
func (f *smokeFixture) pathValues(method, path string) map[string]string {
	out := map[string]string{}
	for _, part := range strings.Split(path, "/") {
		if !strings.HasPrefix(part, "{") {
			continue
		}
		name := strings.Trim(part, "{}")
		v := uuid.NewString()
		switch {
		case name == "token":
			v = "sfi_" + strings.Repeat("x", 40)
		case name == "asset":
			v = "swagger-ui.css"
		case name == "permission":
			v = "nodes:read"
		case method == "DELETE":
		case name == "user_id" || strings.HasPrefix(path, "/v1/users/"):
			v = f.admin.userID
		case strings.HasPrefix(path, "/v1/organizations/"):
			v = f.admin.orgID
		case strings.HasPrefix(path, "/v1/credentials/"):
			v = f.credID
		case strings.HasPrefix(path, "/v1/provision/"):
			v = f.provID
		}
		out[name] = v
	}
	return out
}

func fillPath(path string, values map[string]string) string {
	for name, v := range values {
		path = strings.ReplaceAll(path, "{"+name+"}", url.PathEscape(v))
	}
	return path
}

// mutate builds the i-th request of an operation: the first mutates one
// body property, query parameter, path parameter, the raw body or a header,
// each with an evil string or value.
func (f *smokeFixture) mutate(method, path string, op *openapi3.Operation, i int) smokeRequest {
	r := smokeRequest{method: method, contentType: "application/json", header: map[string]string{}}
	params := f.pathValues(method, path)
	query := url.Values{}
	var pathNames, queryNames []string
	for _, p := range op.Parameters {
		switch p.Value.In {
		case "path":
			pathNames = append(pathNames, p.Value.Name)
		case "query":
			if p.Value.Name == "follow" {
				continue // a stream lasts as long as its run
			}
			queryNames = append(queryNames, p.Value.Name)
		}
	}
	sort.Strings(pathNames)
	sort.Strings(queryNames)
	var body map[string]any
	var props []string
	if op.RequestBody != nil {
		if mt := op.RequestBody.Value.Content.Get("application/json"); mt != nil && mt.Schema != nil && mt.Schema.Value != nil {
			body = f.body(path, mt.Schema.Value)
			for name := range body {
				props = append(props, name)
			}
			sort.Strings(props)
		}
	}

	kinds := []string{"header", "query"}
	if len(props) > 0 {
		kinds = append(kinds, "field", "field", "field", "value", "raw")
	}
	if len(pathNames) > 0 {
		kinds = append(kinds, "path", "path")
	}
	switch kind := kinds[i%len(kinds)]; kind {
	case "field":
		name := props[f.rng.IntN(len(props))]
		s := f.pick()
		if f.rng.IntN(4) == 0 { // inside an array or an object
			switch body[name].(type) {
			case []string, []any:
				body[name] = []any{s}
			case map[string]string, map[string]any:
				if f.rng.IntN(2) == 0 {
					body[name] = map[string]any{"k": s}
				} else {
					body[name] = map[string]any{s: "v"}
				}
			default:
				body[name] = s
			}
		} else {
			body[name] = s
		}
		r.what = fmt.Sprintf("body %s = %.40q", name, s)
	case "value":
		name := props[f.rng.IntN(len(props))]
		v := f.values[f.rng.IntN(len(f.values))]
		body[name] = v
		r.what = fmt.Sprintf("body %s = %.40s", name, v)
	case "raw":
		raw, _ := json.Marshal(body)
		switch f.rng.IntN(7) {
		case 0:
			raw = raw[:f.rng.IntN(len(raw))]
			r.what = "truncated body"
		case 1:
			for range 3 {
				raw[f.rng.IntN(len(raw))] = byte(f.rng.IntN(256))
			}
			r.what = "bytes flipped"
		case 2:
			raw = append(raw, []byte(` {"x":1}`)...)
			r.what = "trailing data"
		case 3:
			raw = bytes.Replace(raw, []byte(`"`), []byte("\"\xff\xfe"), 2)
			r.what = "invalid UTF-8 in a string"
		case 4:
			raw = []byte(strings.Repeat("[", 20_000) + strings.Repeat("]", 20_000))
			r.what = "deeply nested arrays"
		case 5:
			r.contentType = "text/plain"
			r.what = "text/plain body"
		case 6:
			raw = bytes.Replace(raw, []byte("{"), []byte(`{"`+props[0]+`":"\u0000",`), 1)
			r.what = "duplicate key holding NUL"
		}
		r.body = raw
	case "path":
		name := pathNames[f.rng.IntN(len(pathNames))]
		s := f.pick()
		if len(s) > 300 { // a longer request line is 431 before any handler
			s = s[:300]
		}
		params[name] = s
		r.what = fmt.Sprintf("path %s = %.40q", name, s)
	case "query":
		name := "x\x00y"
		if len(queryNames) > 0 && f.rng.IntN(3) > 0 {
			name = queryNames[f.rng.IntN(len(queryNames))]
		}
		s := f.pick()
		if len(s) > 1000 {
			s = s[:1000]
		}
		query.Set(name, s)
		r.what = fmt.Sprintf("query %.20q = %.40q", name, s)
		if f.rng.IntN(4) == 0 {
			r.rawQuery = url.QueryEscape(name) + "=%ff%fe%00"
			r.what = fmt.Sprintf("query %.20q = invalid UTF-8 and NUL", name)
		}
	case "header":
		s := f.pick()
		for !headerSafe(s) {
			s = f.pick()
		}
		h := []string{"X-Organization-ID", "Idempotency-Key", "X-Request-ID"}[f.rng.IntN(3)]
		r.header[h] = s
		r.what = fmt.Sprintf("header %s = %.40q", h, s)
	}
	r.path = fillPath(path, params)
	if r.rawQuery == "" {
		r.rawQuery = query.Encode()
	}
	if r.body == nil && body != nil {
		r.body, _ = json.Marshal(body)
	}
	return r
}

// TestFuzzSmoke sends a few thousand mutated requests, over every operation
// of the OpenAPI document (so every route: TestOpenAPICoversEveryRoute),
// through the real server with a platform administrator's session: none
// may answer 5xx, and every 4xx is a short {"error": "..."}.
func TestFuzzSmoke(t *testing.T) {
	t.Parallel()
	// The planner's job routes need its queue, which setup's server does
	// not wire: they get their own server (setupPlannerJobs).
	plannerJobs := map[string]bool{"POST /v1/planner/fleet-report": true, "POST /v1/planner/pricing/refresh": true}
	t.Run("every route", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{provisioning: true, externalWorkers: true, ssh: true, nodeOps: true, nodeOpsNoWorker: true, drainQueue: true, cloudflare: cffake.New(t).URL, rateLimit: 1 << 30})
		smoke(t, b, func(key string) bool { return !plannerJobs[key] }, 80)
	})
	t.Run("planner job routes", func(t *testing.T) {
		t.Parallel()
		b := setupPlannerJobs(t, "http://127.0.0.1:1", nil)
		smoke(t, b.bundle, func(key string) bool { return plannerJobs[key] }, len(plannerJobs))
	})
}

// smoke runs the mutated requests over the operations keep selects
// ("POST /v1/nodes/{id}"), which must number at least minOps.
func smoke(t *testing.T, b *bundle, keep func(string) bool, minOps int) {
	t.Helper()
	admin := b.bootstrap("admin@example.com")
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	// The mutations are the same at every run; SHARDFORM_FUZZ_SEED picks others.
	seed := uint64(2026)
	if v := os.Getenv("SHARDFORM_FUZZ_SEED"); v != "" {
		if seed, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("SHARDFORM_FUZZ_SEED: %v", err)
		}
	}
	f := &smokeFixture{
		admin: admin, publicKey: string(ssh.MarshalAuthorizedKey(sshPub)),
		strings: evilStrings(), values: evilValues(), rng: mrand.New(mrand.NewPCG(seed, 11)),
	}
	doc := loadDocument(t, b, "/openapi.json")
	if doc.Paths.Find("/v1/ssh/ca/keys") != nil {
		b.expect(req{method: "POST", path: "/v1/ssh/ca/keys", token: admin.access, body: map[string]any{}}, 201)
	}
	f.credID = b.expect(req{method: "POST", path: "/v1/credentials", token: admin.access,
		body: map[string]any{"name": "fuzz", "provider": "hetzner", "secret": map[string]string{"token": strings.Repeat("t", 64)}}}, 201).str("id")
	if doc.Paths.Find("/v1/provision") != nil {
		f.provID = b.expect(req{method: "POST", path: "/v1/provision", token: admin.access,
			body: map[string]any{"provider": "local", "region": "local", "instance_type": "local-small", "name": "fuzz-0"}}, 201).str("id")
	}
	base := b.listen()
	client := &http.Client{Timeout: 30 * time.Second}

	type key struct{ method, path string }
	var ops []key
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			if keep(method + " " + path) {
				ops = append(ops, key{method, path})
			}
		}
	}
	sort.Slice(ops, func(i, j int) bool { return ops[i].path+ops[i].method < ops[j].path+ops[j].method })

	sent, failures := 0, 0
	statuses := map[int]int{}
	for _, k := range ops {
		op := doc.Paths.Value(k.path).GetOperation(k.method)
		n := 24
		if op.RequestBody != nil {
			n = 48
		}
		for i := range n {
			r := f.mutate(k.method, k.path, op, i)
			u := base + r.path
			if r.rawQuery != "" {
				u += "?" + r.rawQuery
			}
			hr, err := http.NewRequest(r.method, u, bytes.NewReader(r.body))
			if err != nil {
				t.Fatalf("%s %s (%s): %v", r.method, r.path, r.what, err)
			}
			if r.body != nil {
				hr.Header.Set("Content-Type", r.contentType)
			}
			hr.Header.Set("Authorization", "Bearer "+admin.access)
			for h, v := range r.header {
				hr.Header.Set(h, v)
			}
			resp, err := client.Do(hr)
			sent++
			if err != nil {
				failures++
				t.Errorf("%s %s (%s): %v", k.method, k.path, r.what, err)
				continue
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			statuses[resp.StatusCode]++
			switch {
			case resp.StatusCode >= 500:
				failures++
				t.Errorf("%s %s (%s): %d %s", k.method, k.path, r.what, resp.StatusCode, raw)
			case resp.StatusCode >= 400 && strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html"):
				// A dashboard page: the error is shown on the page.
				if !bytes.Contains(raw, []byte(`role="alert"`)) {
					failures++
					t.Errorf("%s %s (%s): %d with a page that shows no error: %.300q", k.method, k.path, r.what, resp.StatusCode, raw)
				}
			case resp.StatusCode >= 400:
				var e struct{ Error string }
				if json.Unmarshal(raw, &e) != nil || e.Error == "" || len(raw) > 4096 {
					failures++
					t.Errorf("%s %s (%s): %d with body %.300q, want a short {\"error\": ...}", k.method, k.path, r.what, resp.StatusCode, raw)
				}
			}
			if failures > 40 {
				t.Fatalf("stopping after %d failures", failures)
			}
		}
	}
	t.Logf("%d requests over %d operations (seed %d); statuses %v", sent, len(ops), seed, statuses)
	if len(ops) < minOps || sent < 24*len(ops) {
		t.Errorf("only %d requests over %d operations", sent, len(ops))
	}
	// The session survived the smoke: its requests reached the handlers.
	b.expect(req{method: "GET", path: "/v1/whoami", token: admin.access}, 200)
}

// TestBadInputIs400 pins the inputs that used to reach Postgres (500) or
// the logs whole: each is 400 naming the field, and changes nothing.
func TestBadInputIs400(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{provisioning: true, externalWorkers: true})
	a := b.bootstrap("admin@example.com")
	org := "/v1/organizations/" + a.orgID
	tests := []struct {
		name string
		r    req
		want string // the start of the error message
	}{
		{"NUL in an organization name", req{method: "POST", path: "/v1/organizations", body: map[string]any{"name": "a\x00b"}}, "name: must not contain control characters (U+0000 at character 2)"},
		{"right-to-left override in a rename", req{method: "PUT", path: org, body: map[string]any{"name": "evil\u202Etxt"}}, "name: must not contain bidirectional control characters (U+202E"},
		{"NUL in an API token name", req{method: "POST", path: "/v1/api-tokens", body: map[string]any{"name": "a\x00", "scopes": []string{"nodes:read"}}}, "name: must not contain control characters"},
		{"NUL in an invite email", req{method: "POST", path: org + "/members", body: map[string]any{"email": "a\x00@example.com"}}, "email: must not contain control characters"},
		{"a 1 MB email at login", req{method: "POST", path: "/v1/auth/login", body: map[string]any{"email": strings.Repeat("a", 1_000_000) + "@example.com", "password": testPassword}}, "email: must be at most 254 characters"},
		{"a 1 MB email at register", req{method: "POST", path: "/v1/auth/register", body: map[string]any{"email": strings.Repeat("a", 1_000_000) + "@example.com", "password": testPassword}}, "email: must be at most 254 characters"},
		{"NUL in a password", req{method: "POST", path: "/v1/auth/register", body: map[string]any{"email": "new@example.com", "password": testPassword + "\x00"}}, "password: must not contain control characters"},
		{"NUL in a label value", req{method: "POST", path: "/v1/provision", body: map[string]any{"provider": "local", "region": "local", "instance_type": "local-small", "name": "web-1", "labels": map[string]string{"env": "pr\x00od"}}}, "labels.env: must not contain control characters"},
		{"NUL in a label key", req{method: "POST", path: "/v1/provision", body: map[string]any{"provider": "local", "region": "local", "instance_type": "local-small", "name": "web-1", "labels": map[string]string{"e\x00nv": "prod"}}}, "labels: key must not contain control characters"},
		{"NUL in an SSH key comment", req{method: "POST", path: "/v1/provision", body: map[string]any{"provider": "local", "region": "local", "instance_type": "local-small", "name": "web-1", "ssh_keys": []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA me\x00"}}}, "ssh_keys[0]: must not contain control characters"},
		{"an uppercase credential id", req{method: "POST", path: "/v1/provision", body: map[string]any{"provider": "local", "region": "local", "instance_type": "local-small", "name": "web-1", "credential_id": strings.ToUpper(uuid.NewString())}}, "credential_id: must be a credential id: a canonical lowercase UUID"},
		{"NUL in a credential secret", req{method: "POST", path: "/v1/credentials", body: map[string]any{"name": "c", "provider": "hetzner", "secret": map[string]string{"token": strings.Repeat("t", 40) + "\x00"}}}, "secret.token: must not contain control characters"},
		{"a too long secret", req{method: "POST", path: "/v1/credentials", body: map[string]any{"name": "c", "provider": "hetzner", "secret": map[string]string{"token": strings.Repeat("t", 4097)}}}, "secret.token: must be at most 4096 characters"},
		{"NUL in a status filter", req{method: "GET", path: "/v1/provision?status=%00"}, "status: must not contain control characters"},
		{"NUL in a provider filter", req{method: "GET", path: "/v1/nodes?provider=%00"}, "provider: must not contain control characters"},
		{"NUL in a credentials filter", req{method: "GET", path: "/v1/credentials?provider=a%00"}, "provider: must not contain control characters"},
		{"invalid UTF-8 in a filter", req{method: "GET", path: "/v1/instances?template=%ff"}, "template: must be valid UTF-8"},
		{"a long filter", req{method: "GET", path: "/v1/planner/pricing?region=" + strings.Repeat("r", 256)}, "region: must be at most 255 characters"},
		{"NUL in a query parameter name", req{method: "GET", path: "/v1/organizations?a%00=1"}, "query parameter name: must not contain control characters"},
		{"NUL in a query of a path-id endpoint", req{method: "GET", path: "/v1/provision/" + uuid.NewString() + "/logs?after=1&x=%00"}, "x: must not contain control characters"},
		{"bidi control in an Idempotency-Key", req{method: "POST", path: "/v1/provision", header: map[string]string{"Idempotency-Key": "k\u202E"}, body: map[string]any{"provider": "local", "region": "local", "instance_type": "local-small", "name": "web-1"}}, "Idempotency-Key: must not contain bidirectional control characters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := b.on(t)
			before := b.snapshot()
			tt.r.token = a.access
			r := b.do(tt.r)
			if r.Status != 400 {
				t.Errorf("status %d, want 400; body %.300s", r.Status, r.Raw)
			}
			if !strings.HasPrefix(r.errMsg(), tt.want) {
				t.Errorf("error %q, want it to start with %q", r.errMsg(), tt.want)
			}
			if len(r.Raw) > 400 {
				t.Errorf("the error is %d bytes: %.100s", len(r.Raw), r.Raw)
			}
			b.unchanged(before)
		})
	}
}

// TestCanonicalIDs: path, query and body ids take only the canonical
// lowercase form; the others are 400 naming the parameter, so an audit
// entry names one form.
func TestCanonicalIDs(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{ssh: true})
	a := b.bootstrap("admin@example.com")
	cred := b.expect(req{method: "POST", path: "/v1/credentials", token: a.access,
		body: map[string]any{"name": "c", "provider": "hetzner", "secret": map[string]string{"token": strings.Repeat("t", 40)}}}, 201).str("id")
	forms := map[string]func(string) string{
		"uppercase":  strings.ToUpper,
		"braces":     func(id string) string { return "{" + id + "}" },
		"urn":        func(id string) string { return "urn:uuid:" + id },
		"hyphenless": func(id string) string { return strings.ReplaceAll(id, "-", "") },
		"mixed case": upperFirstLetter,
		"garbage":    func(string) string { return "not-a-uuid" },
	}
	for name, form := range forms {
		t.Run(name, func(t *testing.T) {
			b := b.on(t)
			tests := []struct {
				r     req
				field string
			}{
				{req{method: "GET", path: "/v1/organizations/" + form(a.orgID)}, "id"},
				{req{method: "GET", path: "/v1/credentials/" + url.PathEscape(form(cred))}, "id"},
				{req{method: "POST", path: "/v1/credentials/" + url.PathEscape(form(cred)) + "/default"}, "id"},
				{req{method: "PUT", path: "/v1/organizations/" + a.orgID + "/members/" + url.PathEscape(form(a.userID)) + "/role", body: map[string]any{"role": "owner"}}, "user_id"},
				{req{method: "GET", path: "/v1/users/" + url.PathEscape(form(a.userID))}, "id"},
				{req{method: "GET", path: "/v1/instances?node=" + url.QueryEscape(form(uuid.NewString()))}, "node"},
				{req{method: "GET", path: "/v1/ssh/certificates?user=" + url.QueryEscape(form(a.userID))}, "user"},
				{req{method: "GET", path: "/v1/ssh/krl?organization_id=" + url.QueryEscape(form(a.orgID))}, "organization_id"},
				{req{method: "POST", path: "/v1/instances", body: map[string]any{"node_id": form(uuid.NewString()), "name": "vh-1", "cpu": 1, "memory_gb": 1, "disk_gb": 1}}, "node_id"},
				{req{method: "GET", path: "/v1/whoami", header: map[string]string{"X-Organization-ID": form(a.orgID)}}, "X-Organization-ID"},
			}
			for _, tt := range tests {
				before := b.snapshot()
				tt.r.token = a.access
				r := b.do(tt.r)
				if r.Status != 400 {
					t.Errorf("%s %s: status %d, want 400; body %.300s", tt.r.method, tt.r.path, r.Status, r.Raw)
				}
				if !strings.HasPrefix(r.errMsg(), tt.field+": must be") || !strings.Contains(r.errMsg(), "canonical lowercase UUID") {
					t.Errorf("%s %s: error %q, want %s: ... canonical lowercase UUID", tt.r.method, tt.r.path, r.errMsg(), tt.field)
				}
				b.unchanged(before)
			}
		})
	}
	// The canonical form is taken, and the audit entry names it.
	b.expect(req{method: "POST", path: "/v1/credentials/" + cred + "/default", token: a.access}, 200)
	if n := b.count("SELECT count(*) FROM audit_logs WHERE target = $1 AND action = 'POST /v1/credentials/:id/default'", cred); n != 1 {
		t.Errorf("%d audit entries name %s", n, cred)
	}
	if n := b.count("SELECT count(*) FROM audit_logs WHERE target <> lower(target)"); n != 0 {
		t.Errorf("%d audit entries name a non-canonical target", n)
	}
}

// on is the bundle reporting to t (a subtest's), so that its helpers'
// failures stop the subtest, never its parent.
func (b *bundle) on(t *testing.T) *bundle {
	c := *b
	c.t = t
	return &c
}

// upperFirstLetter uppercases the first of id's hex letters (all of id
// when it has none).
func upperFirstLetter(id string) string {
	if i := strings.IndexAny(id, "abcdef"); i >= 0 {
		return id[:i] + strings.ToUpper(id[i:i+1]) + id[i+1:]
	}
	return "{" + id + "}"
}

// TestBodyLimit: a body over 1 MiB is 413 with the JSON error, answered
// from the declared length before any of the body is read.
func TestBodyLimit(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a := b.bootstrap("admin@example.com")
	base := b.listen()
	addr := strings.TrimPrefix(base, "http://")
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "POST /v1/organizations HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", addr, a.access, 2<<20)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(raw), `"error":"request body too large"`) {
		t.Fatalf("%d %s, want 413 {\"error\": \"request body too large\"}", resp.StatusCode, raw)
	}

	// Under the limit but over every field's: 400 naming the field.
	r3 := b.do(req{method: "POST", path: "/v1/organizations", token: a.access, body: map[string]any{"name": strings.Repeat("a", 900_000)}})
	if r3.Status != 400 || r3.errMsg() != "name: must be at most 255 characters" {
		t.Fatalf("%d %.200s, want 400 name: must be at most 255 characters", r3.Status, r3.Raw)
	}
}

// TestOpenAPIDocumentsLimits: the request schemas carry the decoder's
// maximum lengths, so a client can check a body before sending it.
func TestOpenAPIDocumentsLimits(t *testing.T) {
	t.Parallel()
	b := fullServer(t)
	doc := loadDocument(t, b, "/openapi.json")
	body := func(method, path string) *openapi3.Schema {
		t.Helper()
		op := doc.Paths.Value(path).GetOperation(method)
		if op == nil || op.RequestBody == nil {
			t.Fatalf("%s %s has no request body", method, path)
		}
		return op.RequestBody.Value.Content.Get("application/json").Schema.Value
	}
	prop := func(s *openapi3.Schema, names ...string) *openapi3.Schema {
		t.Helper()
		for _, n := range names {
			switch n {
			case "[]":
				s = s.Items.Value
			case "{}":
				s = s.AdditionalProperties.Schema.Value
			default:
				if s.Properties[n] == nil {
					t.Fatalf("no property %s", n)
				}
				s = s.Properties[n].Value
			}
		}
		return s
	}
	tests := []struct {
		method, path string
		field        []string
		max          uint64
	}{
		{"POST", "/v1/auth/register", []string{"email"}, 254},
		{"POST", "/v1/auth/register", []string{"password"}, 1024},
		{"POST", "/v1/organizations", []string{"name"}, 255},
		{"POST", "/v1/provision", []string{"name"}, 255},
		{"POST", "/v1/provision", []string{"ssh_keys", "[]"}, 16384},
		{"POST", "/v1/provision", []string{"labels", "{}"}, 255},
		{"POST", "/v1/credentials", []string{"secret", "{}"}, 4096},
		{"POST", "/v1/ssh/certificate", []string{"public_key"}, 16384},
		{"POST", "/v1/ssh/certificate", []string{"principals", "[]"}, 255},
		{"PUT", "/v1/ssh/policy", []string{"force_source_address"}, 1024},
	}
	for _, tt := range tests {
		s := prop(body(tt.method, tt.path), tt.field...)
		if s.MaxLength == nil || *s.MaxLength != tt.max {
			t.Errorf("%s %s %v: maxLength %v, want %d", tt.method, tt.path, tt.field, s.MaxLength, tt.max)
		}
	}
	for _, v := range []struct{ method, path, field string }{
		{"POST", "/v1/ssh/certificate", "validity_hours"},
		{"POST", "/v1/ssh/host-certificate", "validity_hours"},
		{"PUT", "/v1/ssh/policy", "max_validity_hours"},
		{"PUT", "/v1/ssh/policy", "default_validity_hours"},
	} {
		s := prop(body(v.method, v.path), v.field)
		if s.Min == nil || *s.Min != 1 || s.Max == nil || *s.Max != 8760 {
			t.Errorf("%s %s %s: minimum %v maximum %v, want 1 and 8760", v.method, v.path, v.field, s.Min, s.Max)
		}
	}
}
