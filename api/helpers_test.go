package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/shardform/shardform/agent"
	"github.com/shardform/shardform/api"
	"github.com/shardform/shardform/capacity"
	"github.com/shardform/shardform/credentials"
	"github.com/shardform/shardform/dns"
	"github.com/shardform/shardform/identity"
	"github.com/shardform/shardform/internal/app"
	"github.com/shardform/shardform/internal/statetest"
	"github.com/shardform/shardform/nodeops"
	"github.com/shardform/shardform/placement"
	"github.com/shardform/shardform/providers"
	"github.com/shardform/shardform/provision"
	"github.com/shardform/shardform/seal"
	"github.com/shardform/shardform/store"
	"github.com/shardform/shardform/store/storetest"
	"github.com/shardform/shardform/terraform"
	"github.com/shardform/shardform/tfstate"
	"github.com/shardform/shardform/worker"
)

// testPassword is long enough for the password rule.
const testPassword = "correct horse battery"

// bundle is one test's API on its own database.
type bundle struct {
	t        *testing.T
	srv      *api.Server
	contract *contract
	pool     *pgxpool.Pool
	now      time.Time
	clock    func() time.Time
}

type setupOpts struct {
	rateLimit         int
	closeRegistration bool
	// refreshReuse is identity.Options.RefreshReuseInterval (0: its default).
	refreshReuse time.Duration
	// provisioning runs the provisioning pipeline with River workers and
	// real Terraform; drivers adds drivers beside local.
	provisioning bool
	drivers      []providers.Driver
	// externalWorkers: this process only inserts jobs; worker processes
	// started by the test run them.
	externalWorkers bool
	// ssh serves the SSH CA with an in-process ssh_sign River worker.
	ssh bool
	// verifiers check credentials (against local fakes of the clouds' APIs).
	verifiers map[string]credentials.Verifier
	// awsEndpoint adds an AWS verifier (Terraform's aws_caller_identity)
	// calling this endpoint.
	awsEndpoint string
	// logs receives the server's log (JSON lines); metrics is served at /metrics.
	logs    io.Writer
	metrics *prometheus.Registry
	// unavailable: queues this process cannot run (api.Config.Unavailable).
	unavailable map[string]string
	// terraformWrap, when set, is shell run before each Terraform command
	// of the provisioning workers ("$@" are its arguments), which then
	// runs: a test's way to make a run slow or deaf to SIGINT.
	terraformWrap string
	// cancelGrace is how long a cancelled Terraform command may take to
	// stop before it is killed (SHARDFORM_CANCEL_GRACE; 0: 5 s).
	cancelGrace time.Duration
	// followHeartbeat is the live log streams' heartbeat (0: the default).
	followHeartbeat time.Duration
	// agentOptions tune the agents' service (served with ssh).
	agentOptions agent.Options
	// joinURL (with provisioning and ssh) makes provisioned nodes join by
	// themselves, through this API address.
	joinURL string
	// driftInterval turns the periodic drift check on (worker.Options.DriftInterval).
	driftInterval time.Duration
	// planRender is SHARDFORM_PLAN_RENDER ("": eager, the default).
	planRender string
	// riverUI mounts River UI at /riverui (riverui_test.go).
	riverUI bool
	// nodeOps serves the power actions with a node_action River worker
	// (none with nodeOpsNoWorker: jobs stay queued); clouds are its power
	// clients, stopTimeout its graceful-stop timeout.
	nodeOps         bool
	nodeOpsNoWorker bool
	// workerLostAfter and addressRetry are nodeops' lost-worker bound and
	// address-read backoff (0: the defaults).
	workerLostAfter, addressRetry time.Duration
	clouds                        map[string]nodeops.Power
	stopTimeout                   time.Duration
	// drains runs node_drain jobs on an in-process River worker
	// (migrations_test.go); drainQueue only inserts them.
	drains, drainQueue bool
	// cloudflare serves /v1/dns, with an in-process dns River worker,
	// against this Cloudflare API (a fake's URL); with provisioning, nodes
	// get auto-DNS. dns tunes the DNS service.
	cloudflare string
	dns        dns.Options
	// dnsReconcile turns the periodic dns_reconcile on (0: off).
	dnsReconcile time.Duration
	// trustedProxies: api.Config.TrustedProxies.
	trustedProxies []string
	// now is the API's clock (api.Config.Now and the domain services it
	// builds); nil: time.Now.
	now func() time.Time
	// publicURL is api.Config.PublicURL (SHARDFORM_PUBLIC_URL).
	publicURL string
}

// setup builds the API on a fresh database. Argon2 runs with small costs so
// the suite stays fast; the format and code path are those of production.
func setup(t *testing.T, opts ...setupOpts) *bundle {
	t.Helper()
	var o setupOpts
	if len(opts) > 0 {
		o = opts[0]
	}
	pool := storetest.NewPool(t)
	srv := newServer(t, pool, o)
	return &bundle{t: t, srv: srv, pool: pool, contract: &contract{}}
}

// setupServerOn builds a second API (as another process would be) on the same database.
func setupServerOn(t *testing.T, pool *pgxpool.Pool, rateLimit int) *api.Server {
	t.Helper()
	return newServer(t, pool, setupOpts{rateLimit: rateLimit})
}

func newServer(t *testing.T, pool *pgxpool.Pool, o setupOpts) *api.Server {
	t.Helper()
	st := store.NewStore(pool)
	key := bytes.Repeat([]byte{42}, seal.KeySize)
	sealer, err := seal.New(key)
	if err != nil {
		t.Fatal(err)
	}
	if o.awsEndpoint != "" {
		o.verifiers = maps.Clone(o.verifiers)
		if o.verifiers == nil {
			o.verifiers = map[string]credentials.Verifier{}
		}
		o.verifiers["aws"] = providers.AWSVerifier{Runner: newRunner(t, pool), Endpoint: o.awsEndpoint}
	}
	creds := credentials.New(st, sealer, o.verifiers)
	var dnsSvc *dns.Service
	var dnsAPI api.DNS
	if o.cloudflare != "" {
		dnsSvc = startDNS(t, pool, creds, o)
		dnsAPI = dnsSvc
	}
	var prov api.Provisioning
	var provSvc *provision.Service
	if o.provisioning {
		provSvc = startProvisioning(t, pool, key, o, dnsSvc)
		if o.planRender != "" {
			provSvc.UsePlanRender(o.planRender)
		}
		prov = provSvc
	}
	var nodeOps api.NodeOps
	if o.nodeOps {
		svc := startNodeOps(t, pool, key, o, dnsSvc) // nodeops_test.go
		nodeOps = svc
		if provSvc != nil {
			provSvc.UsePower(svc)
		}
	}
	var sshCA api.SSHCA
	var agents api.Agents
	if o.ssh {
		svc := startSSH(t, pool, key) // ssh_test.go
		sshCA = svc
		agentSvc := agent.New(st, svc, o.agentOptions)
		if dnsSvc != nil {
			agentSvc.UseDNS(dnsSvc)
		}
		agents = agentSvc
		if o.joinURL != "" && provSvc != nil {
			provSvc.UseJoin(agentSvc, o.joinURL)
		}
	}
	plan, err := capacity.New(st, capacity.Config{})
	if err != nil {
		t.Fatal(err)
	}
	place := placement.New(st, placement.Config{})
	if o.drains || o.drainQueue {
		startDrains(t, pool, place, o.drains) // migrations_test.go
	}
	srv, err := app.NewAPI(app.APIConfig{
		State:        tfstate.New(st, sealer, time.Now, tfstate.Options{}),
		Store:        st,
		Credentials:  creds,
		DNS:          dnsAPI,
		Provisioning: prov,
		Planner:      plan,
		Instances:    place,
		NodeOps:      nodeOps,
		SSH:          sshCA,
		Agents:       agents,
		RiverUI:      riverUIHandler(t, pool, o.riverUI), // riverui_test.go
		MasterKey:    key,
		Identity: identity.Options{
			AllowRegistration:    !o.closeRegistration,
			Password:             identity.PasswordParams{Memory: 1024, Time: 1, Threads: 1},
			RefreshReuseInterval: o.refreshReuse,
		},
		RateLimit: o.rateLimit, Version: "test", FollowHeartbeat: o.followHeartbeat, Now: o.now, PublicURL: o.publicURL, Docs: testDocs, TrustedProxies: o.trustedProxies,
		Logger: slog.New(slog.NewJSONHandler(logsTo(o.logs), nil)), Metrics: o.metrics, Unavailable: o.unavailable,
	})
	if err != nil {
		t.Fatal(err)
	}
	return srv
}

func logsTo(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

// response is a decoded answer.
type response struct {
	Status int
	Header http.Header
	Body   map[string]any
	Raw    []byte
}

// errMsg is the {"error": "..."} message.
func (r response) errMsg() string {
	s, _ := r.Body["error"].(string)
	return s
}

func (r response) str(key string) string {
	s, _ := r.Body[key].(string)
	return s
}

// list returns the "data" array of a list answer.
func (r response) list() []map[string]any {
	raw, _ := r.Body["data"].([]any)
	out := make([]map[string]any, len(raw))
	for i, v := range raw {
		out[i], _ = v.(map[string]any)
	}
	return out
}

// req is one request: body is marshalled to JSON unless it is a string.
type req struct {
	method, path string
	body         any
	token        string            // Authorization: Bearer
	header       map[string]string // extra headers
	timeout      time.Duration     // default 2 min: a loaded 2-core CI box can be slow; a hang still fails
	noContract   bool              // the answer is not checked against the OpenAPI document
}

// do sends r and decodes the answer; it fails the test (t.Fatal) when the
// request cannot be sent or its answer decoded. From a goroutine other
// than the test's, call try instead.
func (b *bundle) do(r req) response {
	b.t.Helper()
	out, err := b.try(r)
	if err != nil {
		b.t.Fatal(err)
	}
	return out
}

// try is do returning its failure instead of calling t.Fatal, so a
// goroutine can send requests (a contract violation is reported with
// t.Error, which any goroutine may call).
func (b *bundle) try(r req) (response, error) {
	b.t.Helper()
	var body io.Reader
	switch v := r.body.(type) {
	case nil:
	case string:
		body = strings.NewReader(v)
	default:
		buf, err := json.Marshal(v)
		if err != nil {
			return response{}, fmt.Errorf("%s %s: encode the body: %w", r.method, r.path, err)
		}
		body = bytes.NewReader(buf)
	}
	hr := httptest.NewRequest(r.method, r.path, body)
	if body != nil {
		hr.Header.Set("Content-Type", "application/json")
	}
	if r.token != "" {
		hr.Header.Set("Authorization", "Bearer "+r.token)
	}
	for k, v := range r.header {
		hr.Header.Set(k, v)
	}
	timeout := 2 * time.Minute
	if r.timeout > 0 {
		timeout = r.timeout
	}
	resp, err := b.srv.App().Test(hr, int(timeout.Milliseconds()))
	if err != nil {
		return response{}, fmt.Errorf("%s %s: %w", r.method, r.path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := response{Status: resp.StatusCode, Header: resp.Header, Raw: raw}
	if b.contract != nil && !r.noContract {
		if err := b.contract.check(b.srv, r.method, r.path, out.Status, out.Header, raw); err != nil {
			b.t.Error(err)
		}
	}
	if len(raw) > 0 && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(raw, &out.Body); err != nil {
			return response{}, fmt.Errorf("%s %s: decode %q: %w", r.method, r.path, raw, err)
		}
	}
	return out, nil
}

// expect fails the test unless the answer has the status.
func (b *bundle) expect(r req, status int) response {
	b.t.Helper()
	resp := b.do(r)
	if resp.Status != status {
		b.t.Fatalf("%s %s: status %d, want %d; body %s", r.method, r.path, resp.Status, status, resp.Raw)
	}
	return resp
}

// account is a signed-in user with their own organization.
type account struct {
	email, access, refresh string
	userID, orgID          string
}

// bootstrap creates the first (admin) user and signs in.
func (b *bundle) bootstrap(email string) account {
	b.t.Helper()
	resp := b.expect(req{method: "POST", path: "/v1/auth/bootstrap", body: map[string]string{"email": email, "password": testPassword}}, 201)
	return b.signIn(email, resp)
}

// register creates a user with their own organization and signs in.
func (b *bundle) register(email string) account {
	b.t.Helper()
	resp := b.expect(req{method: "POST", path: "/v1/auth/register", body: map[string]string{"email": email, "password": testPassword}}, 201)
	return b.signIn(email, resp)
}

func (b *bundle) signIn(email string, created response) account {
	b.t.Helper()
	user, _ := created.Body["user"].(map[string]any)
	org, _ := created.Body["organization"].(map[string]any)
	login := b.login(email, testPassword)
	return account{email: email, access: login.str("access_token"), refresh: login.str("refresh_token"),
		userID: user["id"].(string), orgID: org["id"].(string)}
}

func (b *bundle) login(email, password string) response {
	b.t.Helper()
	return b.expect(req{method: "POST", path: "/v1/auth/login", body: map[string]string{"email": email, "password": password}}, 200)
}

// apiToken mints an API token for a in its current organization.
func (b *bundle) apiToken(a account, scopes ...string) string {
	b.t.Helper()
	resp := b.expect(req{method: "POST", path: "/v1/api-tokens", token: a.access, body: map[string]any{"name": "test", "scopes": scopes}}, 201)
	return resp.str("token")
}

// count returns one number from the database.
func (b *bundle) count(query string, args ...any) int {
	b.t.Helper()
	var n int
	if err := b.pool.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		b.t.Fatalf("%s: %v", query, err)
	}
	return n
}

// snapshot counts the rows of the tables a request could change, to prove a
// rejected request changed nothing.
func (b *bundle) snapshot() map[string]int {
	b.t.Helper()
	out := map[string]int{}
	for _, table := range []string{"users", "organizations", "memberships", "invites", "api_tokens", "refresh_tokens", "mfa_challenges", "audit_logs", "credentials", "provision_requests", "instances"} {
		out[table] = b.count("SELECT count(*) FROM " + table)
	}
	return out
}

func (b *bundle) unchanged(before map[string]int) {
	b.t.Helper()
	after := b.snapshot()
	for k, v := range before {
		if after[k] != v {
			b.t.Errorf("table %s changed from %d to %d rows on a rejected request", k, v, after[k])
		}
	}
}

// listen serves the app on a loopback port until the test ends and returns its base URL.
func (b *bundle) listen() string {
	b.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.t.Fatal(err)
	}
	go func() { _ = b.srv.App().Listener(ln) }()
	base := "http://" + ln.Addr().String()
	// Serving has begun once it answers: shutting down before that races
	// with the server's start (fasthttp).
	for i := 0; ; i++ {
		resp, err := http.Get(base + "/health/live")
		if err == nil {
			resp.Body.Close()
			break
		}
		if i == 200 {
			b.t.Fatalf("the test server does not answer: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = b.srv.Shutdown(ctx)
	})
	return base
}

// startProvisioning builds the provisioning service with real Terraform
// (state in this test's database) and starts River workers for it.
func startProvisioning(t *testing.T, pool *pgxpool.Pool, key []byte, o setupOpts, dnsSvc *dns.Service) *provision.Service {
	t.Helper()
	extra, work, driftInterval := o.drivers, !o.externalWorkers, o.driftInterval
	ctx := context.Background()
	runner := newRunnerWith(t, o.terraformWrap, o.cancelGrace)
	sealer, err := seal.New(key)
	if err != nil {
		t.Fatal(err)
	}
	drivers := providers.NewRegistry(append([]providers.Driver{providers.Local{}}, extra...)...)
	svc := provision.New(store.NewStore(pool), sealer, drivers, runner, time.Now, slog.New(slog.NewTextHandler(io.Discard, nil)))
	serveState(t, pool, sealer, svc)
	if dnsSvc != nil {
		svc.UseDNS(dnsSvc)
	}
	client, err := worker.NewClient(pool, store.NewStore(pool), worker.Options{
		Work: work, Provision: svc, FetchPollInterval: 50 * time.Millisecond, DriftInterval: driftInterval,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	svc.UseQueue(client)
	if !work {
		return svc
	}
	if err := client.Start(ctx); err != nil {
		t.Fatal(err)
	}
	watchCtx, stopWatch := context.WithCancel(ctx)
	watched := make(chan struct{})
	go func() { defer close(watched); _ = svc.Watch(watchCtx, 500*time.Millisecond) }()
	t.Cleanup(func() {
		stopCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		_ = client.Stop(stopCtx)
		stopWatch()
		<-watched
	})
	return svc
}

// startDNS builds the DNS service against the Cloudflare API at
// o.cloudflare and starts a River worker for the dns queue.
func startDNS(t *testing.T, pool *pgxpool.Pool, creds *credentials.Service, o setupOpts) *dns.Service {
	t.Helper()
	opts := o.dns
	opts.Endpoint = o.cloudflare
	st := store.NewStore(pool)
	svc := dns.New(st, creds, opts)
	interval := o.dnsReconcile
	if interval == 0 {
		interval = -1
	}
	client, err := worker.NewClient(pool, st, worker.Options{
		Work: true, DNS: svc, FetchPollInterval: 50 * time.Millisecond, DNSReconcileInterval: interval, DNSWorkers: 8,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	svc.UseQueue(client)
	ctx := context.Background()
	if err := client.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stopCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		_ = client.Stop(stopCtx)
	})
	return svc
}

// serveState gives a worker's provisioning service the state store on the
// test's database, served on loopback as a worker process does.
func serveState(t testing.TB, pool *pgxpool.Pool, sealer *seal.Sealer, svc *provision.Service) {
	t.Helper()
	state := statetest.Serve(t, pool, sealer)
	svc.UseState(state.Service, state.Base, time.Hour)
}

// newRunner runs real Terraform (state: see serveState) with
// providers from SHARDFORM_TF_PLUGIN_MIRROR when set.
func newRunner(t *testing.T, pool *pgxpool.Pool) *terraform.Runner {
	t.Helper()
	return newRunnerWith(t, "", 0)
}

// newRunnerWith is a runner whose commands run through a shell wrapper
// running wrap first (none when ""), with a grace period (0: 5 s).
func newRunnerWith(t *testing.T, wrap string, grace time.Duration) *terraform.Runner {
	t.Helper()
	bin, err := terraform.FindBinary(context.Background(), "", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if wrap != "" {
		wrapper := filepath.Join(t.TempDir(), "terraform")
		if err := os.WriteFile(wrapper, []byte("#!/bin/sh\n"+wrap+"\nexec "+bin+" \"$@\"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		bin = wrapper
	}
	if grace == 0 {
		grace = 5 * time.Second
	}
	runner, err := terraform.NewRunner(terraform.Config{Binary: bin, DataDir: t.TempDir(),
		LockTimeout: 10 * time.Second, GracePeriod: grace, PluginMirror: os.Getenv("SHARDFORM_TF_PLUGIN_MIRROR")})
	if err != nil {
		t.Fatal(err)
	}
	return runner
}

// waitStatus polls a provision request until it leaves the running
// statuses and returns it.
func (b *bundle) waitStatus(token, id string) response {
	b.t.Helper()
	return b.waitStatusFor(token, id, 90*time.Second)
}

func (b *bundle) waitStatusFor(token, id string, limit time.Duration) response {
	b.t.Helper()
	deadline := time.Now().Add(limit)
	for {
		r := b.expect(req{method: "GET", path: "/v1/provision/" + id, token: token}, 200)
		if s := r.str("status"); s != "planning" && s != "applying" && s != "destroying" {
			return r
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("provision %s still %s after %v", id, r.str("status"), limit)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// latestRun is the id of a request's newest run.
func (b *bundle) latestRun(token, id string) string {
	b.t.Helper()
	runs := b.expect(req{method: "GET", path: "/v1/provision/" + id + "/runs?limit=1", token: token}, 200).list()
	if len(runs) == 0 {
		b.t.Fatalf("provision %s has no run", id)
	}
	return runs[0]["id"].(string)
}

// waitRun polls a run until it has finished and returns it.
func (b *bundle) waitRun(token, runID string, limit time.Duration) response {
	b.t.Helper()
	deadline := time.Now().Add(limit)
	for {
		r := b.expect(req{method: "GET", path: "/v1/runs/" + runID, token: token}, 200)
		if s := r.str("status"); s != "queued" && s != "running" {
			return r
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("run %s still %s after %v", runID, r.str("status"), limit)
		}
		time.Sleep(200 * time.Millisecond) // within the API's rate limit over minutes-long runs
	}
}
