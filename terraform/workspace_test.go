package terraform_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shardform/shardform/internal/statetest"
	"github.com/shardform/shardform/store/storetest"
	"github.com/shardform/shardform/terraform"
)

// config renders a Terraform JSON configuration with one terraform_data
// resource whose input is value, an optional slow provisioner, and a
// sensitive variable echoed into nothing.
func config(value string, sleepSeconds int) []byte {
	res := map[string]any{"input": value}
	if sleepSeconds > 0 {
		res["provisioner"] = []any{map[string]any{"local-exec": map[string]any{"command": fmt.Sprintf("sleep %d", sleepSeconds)}}}
	}
	cfg := map[string]any{
		"terraform": map[string]any{"backend": map[string]any{"http": map[string]any{}}},
		"variable":  map[string]any{"token": map[string]any{"type": "string", "sensitive": true, "default": ""}},
		"resource":  map[string]any{"terraform_data": map[string]any{"node": res}},
		"output":    map[string]any{"value": map[string]any{"value": "${terraform_data.node.output}"}},
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		panic(err)
	}
	return b
}

type bundle struct {
	pool     *pgxpool.Pool
	bin      string
	backends *statetest.Backends
}

func setup(t *testing.T) *bundle {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), storetest.NewDB(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	bin, err := terraform.FindBinary(context.Background(), "", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return &bundle{pool: pool, bin: bin, backends: statetest.New(t, pool)}
}

// backend is the http backend settings of workspace name.
func (b *bundle) backend(t *testing.T, name string) map[string]string { return b.backends.For(t, name) }

// runner is one "machine": its own data dir, the shared state store.
func (b *bundle) runner(t *testing.T) *terraform.Runner {
	t.Helper()
	r, err := terraform.NewRunner(terraform.Config{Binary: b.bin, DataDir: t.TempDir(), LockTimeout: 5 * time.Second, GracePeriod: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestPlanApplyDestroy(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	var logs bytes.Buffer
	ws, err := b.runner(t).Open(ctx, "prov-1", config("hello", 0), &logs, b.backend(t, "prov-1"))
	if err != nil {
		t.Fatalf("open: %v\n%s", err, logs.String())
	}
	secret := "s3cr3t-token-value"
	plan, err := ws.Plan(ctx, map[string]string{"token": secret}, false)
	if err != nil {
		t.Fatalf("plan: %v\n%s", err, logs.String())
	}
	want := terraform.PlanSummary{Add: 1, Resources: []terraform.ResourceChange{{Address: "terraform_data.node", Type: "terraform_data", Action: "create"}}}
	if fmt.Sprint(plan.Summary) != fmt.Sprint(want) || len(plan.File) == 0 {
		t.Fatalf("summary %+v, want %+v", plan.Summary, want)
	}
	if _, err := os.Stat(filepath.Join(ws.Dir, "shardform-secrets.auto.tfvars.json")); !os.IsNotExist(err) {
		t.Error("secret var file left in the workspace")
	}

	// Apply on another machine: a second runner with its own directory.
	var logs2 bytes.Buffer
	ws2, err := b.runner(t).Open(ctx, "prov-1", config("hello", 0), &logs2, b.backend(t, "prov-1"))
	if err != nil {
		t.Fatalf("open 2: %v\n%s", err, logs2.String())
	}
	if err := ws2.Apply(ctx, plan.File, map[string]string{"token": secret}); err != nil {
		t.Fatalf("apply: %v\n%s", err, logs2.String())
	}
	outs, err := ws2.Outputs(ctx)
	if err != nil || string(outs["value"]) != `"hello"` {
		t.Fatalf("outputs %s, %v", outs["value"], err)
	}
	all := logs.String() + logs2.String()
	if strings.Contains(all, secret) {
		t.Errorf("a sensitive variable appeared in the Terraform output:\n%s", all)
	}
	if !strings.Contains(all, "Apply complete! Resources: 1 added") {
		t.Errorf("apply output not captured:\n%s", all)
	}
	// State lives in shardform's state store, sealed: versions, no plain text.
	var versions, plain int
	if err := b.pool.QueryRow(ctx, "SELECT count(*), count(*) FILTER (WHERE position('terraform_data'::bytea in sealed) > 0) FROM tf_state_versions").Scan(&versions, &plain); err != nil || versions < 1 || plain != 0 {
		t.Fatalf("state versions %d (%d in plain text), %v", versions, plain, err)
	}

	// Nothing to do on a second plan.
	again, err := ws.Plan(ctx, nil, false)
	if err != nil || again.Summary.Add+again.Summary.Change+again.Summary.Destroy != 0 {
		t.Fatalf("second plan %+v, %v", again.Summary, err)
	}
	destroyPlan, err := ws.Plan(ctx, nil, true)
	if err != nil || destroyPlan.Summary.Destroy != 1 {
		t.Fatalf("destroy plan %+v, %v", destroyPlan.Summary, err)
	}
	if err := ws.Destroy(ctx, nil); err != nil {
		t.Fatalf("destroy: %v\n%s", err, logs.String())
	}
	if _, err := ws.Outputs(ctx); err != nil {
		t.Fatal(err)
	}
	if err := ws.Remove(); err != nil {
		t.Fatal(err)
	}
}

func TestStalePlanRefused(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	r := b.runner(t)
	ws, err := r.Open(ctx, "prov-stale", config("one", 0), nil, b.backend(t, "prov-stale"))
	if err != nil {
		t.Fatal(err)
	}
	old, err := ws.Plan(ctx, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	newer, err := ws.Plan(ctx, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := ws.Apply(ctx, newer.File, nil); err != nil {
		t.Fatal(err)
	}
	if err := ws.Apply(ctx, old.File, nil); !errors.Is(err, terraform.ErrStalePlan) {
		t.Fatalf("apply of a stale plan: %v, want ErrStalePlan", err)
	}
}

// slowConfig is config(value, 0) with a provisioner that writes its process
// id to pidFile and then sleeps for an hour in that same process: an apply
// of it runs until it is cancelled.
func slowConfig(value, pidFile string) []byte {
	var cfg map[string]any
	if err := json.Unmarshal(config(value, 0), &cfg); err != nil {
		panic(err)
	}
	node := cfg["resource"].(map[string]any)["terraform_data"].(map[string]any)["node"].(map[string]any)
	node["provisioner"] = []any{map[string]any{"local-exec": map[string]any{
		"command": fmt.Sprintf("echo $$ > %s.tmp && mv %s.tmp %s && exec sleep 3600", pidFile, pidFile, pidFile)}}}
	b, err := json.Marshal(cfg)
	if err != nil {
		panic(err)
	}
	return b
}

// alive reports whether process pid exists and is not a zombie.
func alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) state ...: the state follows the last ')'.
	rest := string(stat[bytes.LastIndexByte(stat, ')')+1:])
	return !strings.HasPrefix(strings.TrimSpace(rest), "Z")
}

// TestCancelReleasesLock cancels an apply while its provisioner runs: the
// apply reports the cancellation (not another failure), leaves no process
// behind and releases the state lock, so the next plan gets it within the
// 5 s lock timeout; the object created before the interrupt is in the state,
// tainted, so that plan replaces it.
func TestCancelReleasesLock(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := b.runner(t)
	pidFile := filepath.Join(t.TempDir(), "provisioner.pid")
	ws, err := r.Open(context.Background(), "prov-slow", slowConfig("slow", pidFile), nil, b.backend(t, "prov-slow"))
	if err != nil {
		t.Fatal(err)
	}
	plan, err := ws.Plan(context.Background(), nil, false)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	applied := make(chan error, 1)
	go func() { applied <- ws.Apply(ctx, plan.File, nil) }()

	// Cancel once the provisioner is running (the state lock is held then).
	var pid int
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for pid == 0 {
		select {
		case err := <-applied:
			t.Fatalf("apply ended before it was cancelled: %v", err)
		case <-tick.C:
			if raw, err := os.ReadFile(pidFile); err == nil {
				if _, err := fmt.Sscan(string(raw), &pid); err != nil {
					t.Fatalf("pid file %q: %v", raw, err)
				}
			}
		}
	}
	if !alive(pid) {
		t.Fatalf("provisioner %d not running before the cancel", pid)
	}
	t.Cleanup(func() { // should there be a regression, leave nothing running
		if alive(pid) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	if s := r.Stats()["apply"]; s.Running != 1 {
		t.Errorf("apply stats while it runs: %+v, want 1 running", s)
	}
	cancel()
	err = <-applied
	if err == nil {
		t.Fatal("cancelled apply succeeded")
	}
	if s := r.Stats()["apply"]; s.Running != 0 || s.Processes != 1 {
		t.Errorf("apply stats after the cancel: %+v, want 0 running, 1 exited", s)
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled apply: %v, want an error wrapping context.Canceled", err)
	}
	if alive(pid) {
		t.Errorf("provisioner %d still running after the cancelled apply returned", pid)
	}

	ws2, err := r.Open(context.Background(), "prov-slow", config("slow", 0), nil, b.backend(t, "prov-slow"))
	if err != nil {
		t.Fatal(err)
	}
	again, err := ws2.Plan(context.Background(), nil, false)
	if err != nil {
		t.Fatalf("plan after a cancelled apply: %v", err)
	}
	// The object the apply created before it was interrupted is in the
	// state, tainted: it is replaced, never forgotten.
	want := terraform.PlanSummary{Add: 1, Destroy: 1, Resources: []terraform.ResourceChange{{Address: "terraform_data.node", Type: "terraform_data", Action: "replace"}}}
	if fmt.Sprint(again.Summary) != fmt.Sprint(want) {
		t.Errorf("plan after a cancelled apply %+v, want %+v", again.Summary, want)
	}
}

func TestConcurrentWorkspaceCreation(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const n = 4
	// One runner ("machine") per workspace, built here: a goroutine must not
	// call t.Fatal.
	runners := make([]*terraform.Runner, n)
	for i := range runners {
		runners[i] = b.runner(t)
	}
	backends := make([]map[string]string, n)
	for i := range backends {
		backends[i] = b.backend(t, fmt.Sprintf("prov-c%d", i))
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			ws, err := runners[i].Open(context.Background(), fmt.Sprintf("prov-c%d", i), config("x", 0), nil, backends[i])
			if err == nil {
				_, err = ws.Plan(context.Background(), nil, false)
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("workspace %d: %v", i, err)
		}
	}
}

func TestOpenRejectsBadInput(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := b.runner(t)
	for _, name := range []string{"", "../escape", "has space", strings.Repeat("x", 91)} {
		if _, err := r.Open(context.Background(), name, config("x", 0), nil, nil); err == nil {
			t.Errorf("Open accepted workspace name %q", name)
		}
	}
	if _, err := r.Open(context.Background(), "ok", []byte("resource {"), nil, b.backend(t, "ok")); err == nil {
		t.Error("Open accepted a configuration that is not JSON")
	}
}

// TestPluginMirror installs hashicorp/aws from the filesystem mirror named by
// SHARDFORM_TF_PLUGIN_MIRROR (the registry cannot be reached here).
func TestPluginMirror(t *testing.T) {
	t.Parallel()
	mirror := os.Getenv("SHARDFORM_TF_PLUGIN_MIRROR")
	if mirror == "" {
		t.Skip("SHARDFORM_TF_PLUGIN_MIRROR not set: no provider mirror to install from")
	}
	b := setup(t)
	r, err := terraform.NewRunner(terraform.Config{Binary: b.bin, DataDir: t.TempDir(), PluginMirror: mirror})
	if err != nil {
		t.Fatal(err)
	}
	cfg := []byte(`{"terraform":{"backend":{"http":{}},"required_providers":{"aws":{"source":"hashicorp/aws","version":"5.100.0"}}}}`)
	var logs bytes.Buffer
	ws, err := r.Open(context.Background(), "prov-mirror", cfg, &logs, b.backend(t, "prov-mirror"))
	if err != nil {
		t.Fatalf("init from mirror: %v\n%s", err, logs.String())
	}
	if !strings.Contains(logs.String(), "hashicorp/aws v5.100.0") {
		t.Errorf("aws provider not installed from the mirror:\n%s", logs.String())
	}
	if _, err := os.Stat(filepath.Join(ws.Dir, ".terraform.lock.hcl")); err != nil {
		t.Errorf("no lock file: %v", err)
	}
}

// TestRunGOGC checks the Go collector setting Terraform runs with (and
// passes on to what it starts: here a local-exec provisioner, as it does
// to providers): the runner's default, or ExtraEnv's.
func TestRunGOGC(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, tc := range []struct {
		name  string
		extra map[string]string
		want  string
	}{
		{"default", nil, "400"},
		{"extra env", map[string]string{"GOGC": "100"}, "100"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r, err := terraform.NewRunner(terraform.Config{Binary: b.bin, DataDir: t.TempDir(), ExtraEnv: tc.extra})
			if err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(t.TempDir(), "gogc")
			cfg := map[string]any{
				"terraform": map[string]any{"backend": map[string]any{"http": map[string]any{}}},
				"resource": map[string]any{"terraform_data": map[string]any{"node": map[string]any{
					"provisioner": []any{map[string]any{"local-exec": map[string]any{"command": "echo \"$GOGC\" > " + out}}},
				}}},
			}
			raw, _ := json.Marshal(cfg)
			ctx := context.Background()
			var logs bytes.Buffer
			name := "gogc-" + strings.ReplaceAll(tc.name, " ", "-")
			ws, err := r.Open(ctx, name, raw, &logs, b.backend(t, name))
			if err != nil {
				t.Fatalf("%v\n%s", err, logs.String())
			}
			plan, err := ws.Plan(ctx, nil, false)
			if err == nil {
				err = ws.Apply(ctx, plan.File, nil)
			}
			if err != nil {
				t.Fatalf("%v\n%s", err, logs.String())
			}
			got, err := os.ReadFile(out)
			if err != nil || strings.TrimSpace(string(got)) != tc.want {
				t.Errorf("GOGC in the run: %q (%v), want %q", got, err, tc.want)
			}
		})
	}
}
