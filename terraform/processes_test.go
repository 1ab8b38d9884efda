package terraform_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shardform/shardform/terraform"
)

// TestProcessesPerRequest counts the Terraform processes a request costs
// through a wrapper that records each command: the version once per
// runner, init once per provider set (shared by every request of a driver;
// no workspace to create: the http backend keeps one state per request), then
// one process for the plan and one for the apply (summary and outputs come
// from their own -json streams: no show, no output).
func TestProcessesPerRequest(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r, commands := b.countingRunner(t)
	if got := strings.Join(commands(), " "); got != "version" {
		t.Fatalf("NewRunner ran %q", got)
	}
	ctx := context.Background()
	var logs bytes.Buffer
	ws, err := r.Open(ctx, "count-1", config("hello", 0), &logs, b.backend(t, "count-1"))
	if err != nil {
		t.Fatalf("%v\n%s", err, logs.String())
	}
	if got := strings.Join(commands()[1:], " "); got != "init" {
		t.Fatalf("the first Open ran %q", got)
	}
	plan, err := ws.Plan(ctx, nil, false)
	if err != nil {
		t.Fatalf("%v\n%s", err, logs.String())
	}
	if plan.Summary.Add != 1 || len(plan.Summary.Resources) != 1 || plan.Summary.Resources[0].Action != "create" {
		t.Errorf("summary %+v", plan.Summary)
	}
	// The apply job opens the workspace again, as a new job does.
	ws, err = r.Open(ctx, "count-1", config("hello", 0), &logs, b.backend(t, "count-1"))
	if err != nil {
		t.Fatal(err)
	}
	if err := ws.Apply(ctx, plan.File, nil); err != nil {
		t.Fatalf("%v\n%s", err, logs.String())
	}
	outs, err := ws.Outputs(ctx)
	if err != nil || string(outs["value"]) != `"hello"` {
		t.Fatalf("outputs %v %v", outs, err)
	}
	if got := strings.Join(commands()[2:], " "); got != "plan apply" {
		t.Errorf("plan, a second Open, apply and outputs ran %q, want \"plan apply\"", got)
	}

	// Another request of the same driver shares the init: two processes.
	ws, err = r.Open(ctx, "count-2", config("other", 0), &logs, b.backend(t, "count-2"))
	if err != nil {
		t.Fatal(err)
	}
	plan, err = ws.Plan(ctx, nil, false)
	if err != nil {
		t.Fatalf("%v\n%s", err, logs.String())
	}
	if err := ws.Apply(ctx, plan.File, nil); err != nil {
		t.Fatalf("%v\n%s", err, logs.String())
	}
	if outs, err := ws.Outputs(ctx); err != nil || string(outs["value"]) != `"other"` {
		t.Fatalf("outputs %v %v", outs, err)
	}
	if got := strings.Join(commands()[4:], " "); got != "plan apply" {
		t.Errorf("a second request ran %q, want \"plan apply\"", got)
	}

	// The runner's own accounting counts the same processes, each with the
	// CPU time the kernel gave it.
	stats := r.Stats()
	want := map[string]int{"version": 1, "init": 1, "plan": 2, "apply": 2}
	if len(stats) != len(want) {
		t.Errorf("stats by command %v, want %v", stats, want)
	}
	for cmd, n := range want {
		s := stats[cmd]
		if s.Processes != n || s.Running != 0 || s.CPU() <= 0 || s.Wall <= 0 {
			t.Errorf("stats of %s: %+v, want %d processes with CPU and wall time", cmd, s, n)
		}
	}
}

// countingRunner is a runner whose binary is a wrapper recording each
// command it is run with; commands lists them so far.
func (b *bundle) countingRunner(t *testing.T) (*terraform.Runner, func() []string) {
	t.Helper()
	dir := t.TempDir()
	record := filepath.Join(dir, "commands")
	wrapper := filepath.Join(dir, "terraform")
	script := "#!/bin/sh\necho \"$1\" >> " + record + "\nexec " + b.bin + " \"$@\"\n"
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	commands := func() []string {
		raw, _ := os.ReadFile(record)
		return strings.Fields(string(raw))
	}
	r, err := terraform.NewRunner(terraform.Config{Binary: wrapper, DataDir: t.TempDir(), LockTimeout: 5 * time.Second, GracePeriod: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return r, commands
}

// TestSensitiveOutputsFromState: an apply's stream withholds sensitive
// outputs; they are read from the state version the apply wrote (through
// the http backend, with the run's credential), so a request with one
// still costs two processes, plan and apply, and gets every output.
func TestSensitiveOutputsFromState(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r, commands := b.countingRunner(t)
	ctx := context.Background()
	var logs bytes.Buffer
	ws, err := r.Open(ctx, "sens-1", sensitiveConfig(), &logs, b.backend(t, "sens-1"))
	if err != nil {
		t.Fatalf("%v\n%s", err, logs.String())
	}
	const secret = "s3cr3t-output-token"
	plan, err := ws.Plan(ctx, map[string]string{"token": secret}, false)
	if err != nil {
		t.Fatalf("%v\n%s", err, logs.String())
	}
	if err := ws.Apply(ctx, plan.File, nil); err != nil {
		t.Fatalf("%v\n%s", err, logs.String())
	}
	outs, err := ws.Outputs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if string(outs["token"]) != `"`+secret+`"` || len(outs["id"]) < 3 {
		t.Errorf("outputs %s", outs)
	}
	if got := strings.Join(commands(), " "); got != "version init plan apply" {
		t.Errorf("a request with a sensitive output ran %q, want \"version init plan apply\"", got)
	}
	if strings.Contains(logs.String(), secret) {
		t.Errorf("the sensitive output is in the log:\n%s", logs.String())
	}
}

// TestConcurrentRequestsShareInit runs six requests at once on one runner:
// they share one init and its data dir, and every plan and apply succeeds.
func TestConcurrentRequestsShareInit(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := b.runner(t)
	const n = 6
	backends := make([]map[string]string, n)
	for i := range backends {
		backends[i] = b.backend(t, fmt.Sprintf("share-%d", i))
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			ctx := context.Background()
			ws, err := r.Open(ctx, fmt.Sprintf("share-%d", i), config(fmt.Sprintf("v%d", i), 0), nil, backends[i])
			if err != nil {
				errs[i] = err
				return
			}
			plan, err := ws.Plan(ctx, nil, false)
			if err == nil {
				err = ws.Apply(ctx, plan.File, nil)
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("request %d: %v", i, err)
		}
	}
	for i := range n {
		if state := b.backends.State(t, fmt.Sprintf("share-%d", i)); !strings.Contains(state, fmt.Sprintf(`"v%d"`, i)) {
			t.Errorf("request %d's state lacks its value: %.300s", i, state)
		}
	}
}
