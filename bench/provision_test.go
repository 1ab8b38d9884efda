package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shardform/shardform/credentials"
	"github.com/shardform/shardform/identity"
	"github.com/shardform/shardform/internal/app"
	"github.com/shardform/shardform/internal/statetest"
	"github.com/shardform/shardform/providers"
	"github.com/shardform/shardform/provision"
	"github.com/shardform/shardform/seal"
	"github.com/shardform/shardform/store"
	"github.com/shardform/shardform/store/storetest"
	"github.com/shardform/shardform/terraform"
	"github.com/shardform/shardform/worker"
)

// env is a running shardform (API and workers in-process) on a fresh database.
type env struct {
	b      *testing.B
	base   string
	pool   *pgxpool.Pool
	client *http.Client
	token  string
	bin    string
	// commands records every Terraform command the workers ran (the
	// runner's binary is a wrapper that appends the command name to it).
	commands string
	runner   *terraform.Runner
	// requests counts the benchmark client's HTTP requests.
	requests atomic.Int64
}

func newEnv(b *testing.B, terraformWorkers int) *env {
	return newEnvWith(b, envOptions{terraformWorkers: terraformWorkers})
}

// envOptions are the choices of newEnvWith.
type envOptions struct {
	terraformWorkers int
	drivers          []providers.Driver // default: the local driver
	pluginMirror     string             // the runner's provider mirror
}

func newEnvWith(b *testing.B, o envOptions) *env {
	ctx := context.Background()
	if len(o.drivers) == 0 {
		o.drivers = []providers.Driver{providers.Local{}}
	}
	pool := storetest.NewPool(b)
	st := store.NewStore(pool)
	key := bytes.Repeat([]byte{7}, seal.KeySize)
	sealer, _ := seal.New(key)
	bin, err := terraform.FindBinary(ctx, "", b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	commands := filepath.Join(b.TempDir(), "commands")
	wrapper := terraformWrapper(b, bin, commands)
	runner, err := terraform.NewRunner(terraform.Config{Binary: wrapper, DataDir: b.TempDir(), PluginMirror: o.pluginMirror})
	if err != nil {
		b.Fatal(err)
	}
	prov := provision.New(st, sealer, providers.NewRegistry(o.drivers...), runner, time.Now, slog.New(slog.NewTextHandler(io.Discard, nil)))
	state := statetest.Serve(b, pool, sealer)
	prov.UseState(state.Service, state.Base, time.Hour)
	// As `shardform serve` does: River's own statements on a pool of their
	// own whose commits do not wait for the disk (store.QueuePool).
	queuePool, err := store.QueuePool(ctx, pool)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(queuePool.Close)
	rc, err := worker.NewClient(queuePool, st, worker.Options{Work: true, Provision: prov, TerraformWorkers: o.terraformWorkers,
		FetchPollInterval: 200 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	prov.UseQueue(rc)
	if err := rc.Start(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = rc.Stop(context.Background()) })
	// As `shardform serve` does: the rescuer of runs of dead workers.
	watchCtx, stopWatch := context.WithCancel(ctx)
	watched := make(chan struct{})
	go func() { defer close(watched); _ = prov.Watch(watchCtx, provision.DefaultRescueInterval) }()
	b.Cleanup(func() { stopWatch(); <-watched })
	srv, err := app.NewAPI(app.APIConfig{Store: st, MasterKey: key, Identity: identity.Options{AllowRegistration: true},
		RateLimit: 1 << 30, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Provisioning: prov,
		Credentials: credentials.New(st, sealer, nil)})
	if err != nil {
		b.Fatal(err)
	}
	e := &env{b: b, base: listen(b, srv), pool: pool, bin: bin, commands: commands, runner: runner}
	e.client = &http.Client{Transport: counting{&e.requests, http.DefaultTransport}}
	creds := map[string]string{"email": "bench@example.com", "password": "benchmark password"}
	e.call("POST", "/v1/auth/bootstrap", creds, nil)
	var sess struct {
		AccessToken string `json:"access_token"`
	}
	e.call("POST", "/v1/auth/login", creds, &sess)
	e.token = sess.AccessToken
	return e
}

// call sends one request and decodes its answer into out; it fails the
// benchmark unless the answer is 2xx. From another goroutine, use try.
func (e *env) call(method, path string, body, out any) int {
	status, err := e.try(method, path, body, out)
	if err != nil {
		e.b.Fatal(err)
	}
	return status
}

// try is call returning its failure instead of calling b.Fatal.
func (e *env) try(method, path string, body, out any) (int, error) {
	var r io.Reader
	if body != nil {
		buf, _ := json.Marshal(body)
		r = bytes.NewReader(buf)
	}
	req, _ := http.NewRequest(method, e.base+path, r)
	req.Header.Set("Content-Type", "application/json")
	if e.token != "" {
		req.Header.Set("Authorization", "Bearer "+e.token)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return resp.StatusCode, fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: decode: %w", method, path, err)
		}
	}
	return resp.StatusCode, nil
}

// counting counts the requests sent through it.
type counting struct {
	n    *atomic.Int64
	next http.RoundTripper
}

func (c counting) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.next.RoundTrip(r)
}

type provisionView struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	Error  string `json:"error"`
}

func (e *env) create(name string) string {
	var p provisionView
	e.call("POST", "/v1/provision", map[string]any{"provider": "local", "region": "local", "instance_type": "local-small", "name": name}, &p)
	return p.ID
}

func (e *env) wait(id, want string) {
	if err := e.tryWait(id, want); err != nil {
		e.b.Fatal(err)
	}
}

// tryWait is wait returning its failure instead of calling b.Fatal.
func (e *env) tryWait(id, want string) error {
	deadline := time.Now().Add(5 * time.Minute)
	for {
		var p provisionView
		if _, err := e.try("GET", "/v1/provision/"+id, nil, &p); err != nil {
			return err
		}
		if p.Status == want {
			return nil
		}
		if p.Status == provision.StatusFailed || time.Now().After(deadline) {
			return fmt.Errorf("provision %s is %s (%s), want %s", id, p.Status, p.Error, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitQuick is wait polling every 5 ms, for a benchmark that times one
// request at a time.
func (e *env) waitQuick(id, want string) {
	deadline := time.Now().Add(10 * time.Minute)
	for {
		var p provisionView
		e.call("GET", "/v1/provision/"+id, nil, &p)
		if p.Status == want {
			return
		}
		if p.Status == provision.StatusFailed || time.Now().After(deadline) {
			e.b.Fatalf("provision %s is %s (%s), want %s", id, p.Status, p.Error, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// BenchmarkQueuePickup measures, over 100 requests applied one at a time
// with 4 Terraform workers (so a worker is always free), how long a job
// waits for one: from its insert (the job row's created_at, the POST's
// transaction) to the worker starting it (River's attempted_at), both on
// Postgres' clock; and from the POST being sent to the first log line of
// the run being stored. Before each POST it pauses 0–100 ms at random, so
// the POSTs fall at every phase of River's timers (its fetch poll and
// fetch cooldown) instead of in step with the benchmark's own 50 ms status
// polling (which once made every apply land in the cooldown the previous
// one had re-armed).
func BenchmarkQueuePickup(b *testing.B) {
	const n = 100
	e := newEnv(b, 4)
	ids := make([]string, n)
	for i := range ids {
		ids[i] = e.create(fmt.Sprintf("pickup-%d", i))
		e.call("POST", "/v1/provision/"+ids[i]+"/plan", nil, nil)
	}
	for _, id := range ids {
		e.wait(id, provision.StatusPlanned)
	}
	b.ResetTimer()
	var pickup, firstLog []time.Duration
	for _, id := range ids {
		time.Sleep(rand.N(100 * time.Millisecond))
		sent := time.Now()
		e.call("POST", "/v1/provision/"+id+"/apply", nil, nil)
		e.wait(id, provision.StatusApplied)
		var inserted, attempted, logged time.Time
		if err := e.pool.QueryRow(context.Background(),
			`SELECT j.created_at, j.attempted_at, (SELECT min(created_at) FROM provision_logs WHERE provision_id = $1 AND operation = 'apply')
			 FROM river_job j WHERE j.kind = 'provision_apply' AND j.args->>'provision_id' = $1::text`, id).Scan(&inserted, &attempted, &logged); err != nil {
			b.Fatal(err)
		}
		pickup = append(pickup, attempted.Sub(inserted))
		firstLog = append(firstLog, logged.Sub(sent))
	}
	b.StopTimer()
	report(b, "pickup", pickup)
	report(b, "first-log", firstLog)
}

func report(b *testing.B, name string, ds []time.Duration) {
	slices.Sort(ds)
	p := func(q float64) float64 { return float64(ds[int(q*float64(len(ds)-1))].Microseconds()) / 1000 }
	b.ReportMetric(p(0.5), name+"-p50-ms")
	b.ReportMetric(p(0.99), name+"-p99-ms")
}

// BenchmarkThroughput plans and applies 50 local provision requests at once
// through the API, then runs the same 50 configurations with the plain
// terraform CLI one after another as the issue describes it: remote state
// in the pg backend with one workspace per request (init once, then
// `workspace new`, `plan -out`, `apply <plan>` for each), and reports both
// wall times, their ratio and the Terraform processes per request. Since
// wall times on a shared machine depend on the neighbours, it also reports
// each side's CPU time per request, by whom (see cpuSample), the CPU time
// of each Terraform command (the runner's stats) and how long each job
// kind took.
func BenchmarkThroughput(b *testing.B) {
	const n = 50
	workers := 2
	e := newEnv(b, workers)
	b.ResetTimer()
	cpu0 := sampleCPU(b)
	start := time.Now()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = e.create(fmt.Sprintf("tp-%d", i))
		e.call("POST", "/v1/provision/"+ids[i]+"/plan", nil, nil)
	}
	// Like a client watching many requests, one list call every 50 ms reads
	// every status (not one GET per request and 50 ms, which made the
	// benchmark's client send ~60 requests per provision request and eat a
	// fifth of shardform's CPU); each request planned is applied at once.
	applying := map[string]bool{}
	deadline := time.Now().Add(5 * time.Minute)
	for done := 0; done < n; {
		var page struct {
			Data []provisionView `json:"data"`
		}
		e.call("GET", fmt.Sprintf("/v1/provision?limit=%d", n), nil, &page)
		done = 0
		for _, p := range page.Data {
			switch {
			case p.Status == provision.StatusFailed:
				b.Fatalf("provision %s failed: %s", p.ID, p.Error)
			case p.Status == provision.StatusApplied:
				done++
			case p.Status == provision.StatusPlanned && !applying[p.ID]:
				applying[p.ID] = true
				e.call("POST", "/v1/provision/"+p.ID+"/apply", nil, nil)
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d requests applied after 5 minutes", done, n)
		}
		if done < n {
			time.Sleep(50 * time.Millisecond)
		}
	}
	shardform := time.Since(start)
	// The plans' renders for review (eager by default, queued below users'
	// runs) are still running: wait for them too, so that their CPU is
	// shardform's and not taken from the plain CLI's run below.
	for {
		var left int
		if err := e.pool.QueryRow(context.Background(), `SELECT count(*) FROM river_job WHERE kind = $1
			AND state NOT IN ('completed', 'cancelled', 'discarded')`, provision.KindRenderPlan).Scan(&left); err != nil {
			b.Fatal(err)
		}
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d renders left after 5 minutes", left)
		}
		time.Sleep(20 * time.Millisecond)
	}
	withRenders := time.Since(start)
	cpu1 := sampleCPU(b)
	requests := e.requests.Load()
	// The hot path's processes; the render of each plan for review (show
	// -json, queued below users' runs with the default eager
	// SHARDFORM_PLAN_RENDER) is counted apart.
	raw, _ := os.ReadFile(e.commands)
	processes, renders := 0, 0
	for _, cmd := range strings.Fields(string(raw)) {
		if cmd == "show" {
			renders++
		} else {
			processes++
		}
	}
	for cmd, st := range e.runner.Stats() {
		each := func(d time.Duration) time.Duration {
			return (d / time.Duration(st.Processes)).Round(100 * time.Microsecond)
		}
		b.Logf("terraform %s: %d processes, each %v CPU (%v user, %v system), %v wall", cmd, st.Processes, each(st.CPU()), each(st.User), each(st.System), each(st.Wall))
		if cmd == "plan" || cmd == "apply" {
			b.ReportMetric(float64(each(st.CPU()).Microseconds())/1000, cmd+"-cpu-ms")
		}
	}

	dir := b.TempDir()
	tf := func(args ...string) {
		cmd := exec.Command(e.bin, args...)
		cmd.Dir = dir
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "TF_IN_AUTOMATION=1", "CHECKPOINT_DISABLE=1", "TF_CLI_CONFIG_FILE=/dev/null",
			"PG_CONN_STR=" + e.pool.Config().ConnString()}
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("terraform %v: %v\n%s", args, err, out)
		}
	}
	config := func(i int) []byte {
		cfg, err := providers.Local{}.Render(providers.Request{ID: fmt.Sprint(i), Name: fmt.Sprintf("tp-%d", i), Region: "local", InstanceType: "local-small"})
		if err != nil {
			b.Fatal(err)
		}
		var m map[string]any
		_ = json.Unmarshal(cfg, &m)
		m["terraform"] = map[string]any{"backend": map[string]any{"pg": map[string]any{}}} // the CLI's remote state
		cfg, _ = json.Marshal(m)
		return cfg
	}
	start = time.Now()
	for i := range n {
		if err := os.WriteFile(filepath.Join(dir, "main.tf.json"), config(i), 0o600); err != nil {
			b.Fatal(err)
		}
		if i == 0 {
			tf("init", "-input=false")
		}
		tf("workspace", "new", fmt.Sprintf("cli-%d", i))
		tf("plan", "-input=false", "-out=cli.tfplan")
		tf("apply", "-input=false", "cli.tfplan")
	}
	plain := time.Since(start)
	cpu2 := sampleCPU(b)
	b.StopTimer()
	b.Logf("shardform CPU: %v; the benchmark client sent %d HTTP requests", cpu1.sub(cpu0), requests)
	rows, err := e.pool.Query(context.Background(), `SELECT kind, count(*), avg(finalized_at - attempted_at) FROM river_job
		WHERE kind IN ('provision_plan', 'provision_apply') GROUP BY kind ORDER BY kind`)
	if err != nil {
		b.Fatal(err)
	}
	for rows.Next() {
		var kind string
		var count int
		var avg time.Duration
		if err := rows.Scan(&kind, &count, &avg); err != nil {
			b.Fatal(err)
		}
		b.Logf("%s: %d jobs, each %v from its start to its completion (Terraform's process included)", kind, count, avg.Round(100*time.Microsecond))
	}
	rows.Close()
	b.Logf("plain CLI CPU: %v", cpu2.sub(cpu1))
	cpu1.sub(cpu0).report(b, "shardform-", n)
	cpu2.sub(cpu1).report(b, "plain-cli-", n)
	b.ReportMetric(float64(requests)/n, "client-http/request")
	b.ReportMetric(shardform.Seconds(), "shardform-s")
	b.ReportMetric(plain.Seconds(), "plain-cli-s")
	b.ReportMetric(shardform.Seconds()/plain.Seconds(), "ratio")
	b.ReportMetric(withRenders.Seconds(), "shardform-with-renders-s")
	b.ReportMetric(withRenders.Seconds()/plain.Seconds(), "ratio-with-renders")
	b.ReportMetric(float64(processes)/n, "tf-processes/request")
	b.ReportMetric(float64(renders)/n, "render-processes/request")
	b.ReportMetric(float64(workers), "terraform-workers")
}

// BenchmarkRequestLatency times 20 local requests one after another, each
// from its create to applied (create, plan, planned, apply, applied; the
// status polled every 5 ms), with the default 2 Terraform workers.
func BenchmarkRequestLatency(b *testing.B) {
	const n = 20
	e := newEnv(b, 2)
	wait := e.waitQuick
	b.ResetTimer()
	ds := make([]time.Duration, 0, n)
	for i := range n {
		start := time.Now()
		id := e.create(fmt.Sprintf("lat-%d", i))
		e.call("POST", "/v1/provision/"+id+"/plan", nil, nil)
		wait(id, provision.StatusPlanned)
		e.call("POST", "/v1/provision/"+id+"/apply", nil, nil)
		wait(id, provision.StatusApplied)
		ds = append(ds, time.Since(start))
	}
	b.StopTimer()
	report(b, "create-to-applied", ds)
}
