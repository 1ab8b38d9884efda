package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shardform/shardform/identity"
	"github.com/shardform/shardform/internal/app"
	"github.com/shardform/shardform/providers"
	"github.com/shardform/shardform/provision"
	"github.com/shardform/shardform/seal"
	"github.com/shardform/shardform/store"
	"github.com/shardform/shardform/store/storetest"
	"github.com/shardform/shardform/terraform"
	"github.com/shardform/shardform/tfstate"
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
}

func newEnv(b *testing.B, terraformWorkers int) *env {
	ctx := context.Background()
	pool := storetest.NewPool(b)
	st := store.NewStore(pool)
	key := bytes.Repeat([]byte{7}, seal.KeySize)
	sealer, _ := seal.New(key)
	bin, err := terraform.FindBinary(ctx, "", b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	runner, err := terraform.NewRunner(terraform.Config{Binary: bin, DataDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	prov := provision.New(st, sealer, providers.NewRegistry(providers.Local{}), runner, time.Now, slog.New(slog.NewTextHandler(io.Discard, nil)))
	state := tfstate.New(st, sealer, time.Now, tfstate.Options{})
	stateCtx, stopState := context.WithCancel(ctx)
	b.Cleanup(stopState)
	lb, err := tfstate.ServeLoopback(stateCtx, state)
	if err != nil {
		b.Fatal(err)
	}
	prov.UseState(state, lb.Base, time.Hour)
	rc, err := worker.NewClient(pool, st, worker.Options{Work: true, Provision: prov, TerraformWorkers: terraformWorkers,
		FetchPollInterval: 200 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	prov.UseQueue(rc)
	if err := rc.Start(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = rc.Stop(context.Background()) })
	srv, err := app.NewAPI(app.APIConfig{Store: st, MasterKey: key, Identity: identity.Options{AllowRegistration: true},
		RateLimit: 1 << 30, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Provisioning: prov})
	if err != nil {
		b.Fatal(err)
	}
	e := &env{b: b, base: listen(b, srv), pool: pool, client: &http.Client{}, bin: bin}
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

// BenchmarkQueuePickup measures, over 100 requests, the time from the
// POST /apply answer to the worker starting the job (River's attempted_at)
// and to its first Terraform log line.
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
		e.call("POST", "/v1/provision/"+id+"/apply", nil, nil)
		answered := time.Now()
		e.wait(id, provision.StatusApplied)
		var attempted, logged time.Time
		if err := e.pool.QueryRow(context.Background(),
			`SELECT j.attempted_at, (SELECT min(created_at) FROM provision_logs WHERE provision_id = $1 AND operation = 'apply')
			 FROM river_job j WHERE j.kind = 'provision_apply' AND j.args->>'provision_id' = $1::text`, id).Scan(&attempted, &logged); err != nil {
			b.Fatal(err)
		}
		pickup = append(pickup, attempted.Sub(answered))
		firstLog = append(firstLog, logged.Sub(answered))
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
// terraform CLI one after another (init, apply -auto-approve, local state),
// and reports both wall times and their ratio.
func BenchmarkThroughput(b *testing.B) {
	const n = 50
	workers := 2
	e := newEnv(b, workers)
	b.ResetTimer()
	start := time.Now()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = e.create(fmt.Sprintf("tp-%d", i))
		e.call("POST", "/v1/provision/"+ids[i]+"/plan", nil, nil)
	}
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Go(func() {
			err := e.tryWait(id, provision.StatusPlanned)
			if err == nil {
				_, err = e.try("POST", "/v1/provision/"+id+"/apply", nil, nil)
			}
			if err == nil {
				err = e.tryWait(id, provision.StatusApplied)
			}
			if err != nil {
				b.Error(err)
			}
		})
	}
	wg.Wait()
	shardform := time.Since(start)

	start = time.Now()
	for i := range n {
		cfg, err := providers.Local{}.Render(providers.Request{ID: fmt.Sprint(i), Name: fmt.Sprintf("tp-%d", i), Region: "local", InstanceType: "local-small"})
		if err != nil {
			b.Fatal(err)
		}
		var m map[string]any
		_ = json.Unmarshal(cfg, &m)
		delete(m, "terraform") // local state: the plain CLI as a user runs it
		cfg, _ = json.Marshal(m)
		dir := b.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "main.tf.json"), cfg, 0o600); err != nil {
			b.Fatal(err)
		}
		for _, args := range [][]string{{"init", "-input=false"}, {"apply", "-auto-approve", "-input=false"}} {
			cmd := exec.Command(e.bin, args...)
			cmd.Dir = dir
			cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "TF_IN_AUTOMATION=1", "CHECKPOINT_DISABLE=1", "TF_CLI_CONFIG_FILE=/dev/null"}
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("terraform %v: %v\n%s", args, err, out)
			}
		}
	}
	plain := time.Since(start)
	b.StopTimer()
	b.ReportMetric(shardform.Seconds(), "shardform-s")
	b.ReportMetric(plain.Seconds(), "plain-cli-s")
	b.ReportMetric(shardform.Seconds()/plain.Seconds(), "ratio")
	b.ReportMetric(float64(workers), "terraform-workers")
}
