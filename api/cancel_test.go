package api_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shardform/shardform/providers"
)

// slowLocal is the local driver under another name with a slow apply: a
// run that is still going when the test cancels it.
type slowLocal struct{ providers.Local }

func (slowLocal) Name() string { return "slow" }

func TestCancelARunningApply(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{provisioning: true, drivers: []providers.Driver{slowLocal{providers.Local{ApplyDelay: 10 * time.Minute}}}})
	a := b.bootstrap("ops@example.com")
	body := map[string]any{"provider": "slow", "region": "local", "instance_type": "local-small", "name": "web-1"}
	id := b.expect(req{method: "POST", path: "/v1/provision", token: a.access, body: body}, 201).str("id")
	b.expect(req{method: "POST", path: "/v1/provision/" + id + "/plan", token: a.access}, 202)
	if r := b.waitStatus(a.access, id); r.str("status") != "planned" {
		t.Fatalf("plan: %s", r.Raw)
	}
	b.expect(req{method: "POST", path: "/v1/provision/" + id + "/apply", token: a.access}, 202)
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(string(b.expect(req{method: "GET", path: "/v1/provision/" + id + "/logs", token: a.access}, 200).Raw), "Creating...") {
		if time.Now().After(deadline) {
			t.Fatal("the apply never started")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if r := b.expect(req{method: "POST", path: "/v1/provision/" + id + "/cancel", token: a.access}, 202); r.str("status") != "applying" {
		t.Errorf("cancel answered %s", r.Raw)
	}
	r := b.waitStatusFor(a.access, id, 60*time.Second)
	if r.str("status") != "failed" || !strings.Contains(r.str("error"), "apply cancelled: some resources may have been made") {
		t.Fatalf("after the cancel: %s", r.Raw)
	}
	if n := b.count("SELECT count(*) FROM tf_state_locks"); n != 0 {
		t.Errorf("%d state locks left", n)
	}
	if n := b.count("SELECT count(*) FROM nodes"); n != 0 {
		t.Errorf("%d nodes registered by a cancelled apply", n)
	}
	// Nothing runs now: a second cancel is refused.
	if r := b.expect(req{method: "POST", path: "/v1/provision/" + id + "/cancel", token: a.access}, 409); !strings.Contains(r.errMsg(), "nothing to cancel: the provision request is failed") {
		t.Errorf("second cancel: %s", r.Raw)
	}
}

func TestCancelAQueuedRun(t *testing.T) {
	t.Parallel()
	// No worker runs the jobs: every run stays queued.
	b := setup(t, setupOpts{provisioning: true, externalWorkers: true})
	a := b.bootstrap("ops@example.com")
	reader := b.apiToken(a, "provision:read")
	id := b.expect(req{method: "POST", path: "/v1/provision", token: a.access, body: localBody("web-1")}, 201).str("id")
	b.expect(req{method: "POST", path: "/v1/provision/" + id + "/cancel", token: a.access}, 409)
	b.expect(req{method: "POST", path: "/v1/provision/" + id + "/plan", token: a.access}, 202)
	b.expect(req{method: "POST", path: "/v1/provision/" + id + "/cancel", token: reader}, 403)
	r := b.expect(req{method: "POST", path: "/v1/provision/" + id + "/cancel", token: a.access}, 202)
	if r.str("status") != "pending" || r.str("error") != "cancelled before it ran" {
		t.Fatalf("cancel of a queued plan: %s", r.Raw)
	}
	// The run itself ended cancelled, never started.
	runID, _ := r.Body["run"].(map[string]any)["id"].(string)
	if run := b.expect(req{method: "GET", path: "/v1/runs/" + runID, token: a.access}, 200); run.str("status") != "cancelled" || run.Body["started_at"] != nil || run.Body["finished_at"] == nil {
		t.Fatalf("the cancelled queued run: %s", run.Raw)
	}
	// Cancelling it again is refused: it has finished.
	b.expect(req{method: "POST", path: "/v1/runs/" + runID + "/cancel", token: a.access}, 409)
	if n := b.count("SELECT count(*) FROM river_job WHERE kind = 'provision_plan' AND state = 'cancelled'"); n != 1 {
		t.Errorf("%d cancelled plan jobs, want 1", n)
	}
	// The request can be planned again.
	b.expect(req{method: "POST", path: "/v1/provision/" + id + "/plan", token: a.access}, 202)
	other := b.register("other@example.com")
	b.expect(req{method: "POST", path: "/v1/provision/" + id + "/cancel", token: other.access}, 404)
}

// TestCancelRunningPlanAndDestroy cancels runs while Terraform runs: a
// plan of a planned request (the request goes back to planned, the run
// ends cancelled), then a destroy (failed, saying its resources may be
// partial). The runs are made slow by a wrapper that sleeps before
// Terraform, interruptibly, while a marker file exists.
func TestCancelRunningPlanAndDestroy(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	slow, started := filepath.Join(dir, "slow"), filepath.Join(dir, "started")
	wrap := `case "$1 $2" in "plan "*|"apply -destroy") if [ -e ` + slow + ` ]; then : > ` + started + `; sleep 120 >/dev/null 2>&1 </dev/null & wait $!; fi ;; esac`
	b := setup(t, setupOpts{provisioning: true, terraformWrap: wrap})
	a := b.bootstrap("ops@example.com")
	id := b.expect(req{method: "POST", path: "/v1/provision", token: a.access, body: localBody("web-1")}, 201).str("id")
	b.expect(req{method: "POST", path: "/v1/provision/" + id + "/plan", token: a.access}, 202)
	if r := b.waitStatus(a.access, id); r.str("status") != "planned" {
		t.Fatalf("plan: %s", r.Raw)
	}
	if err := os.WriteFile(slow, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// waitStarted waits for the wrapper to be running the run's command.
	waitStarted := func(what string) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			if _, err := os.Stat(started); err == nil {
				_ = os.Remove(started)
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("the %s never started", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	// A running plan of a planned request.
	{
		run := b.expect(req{method: "POST", path: "/v1/provision/" + id + "/plan", token: a.access}, 202).Body["run"].(map[string]any)["id"].(string)
		waitStarted("plan")
		if r := b.expect(req{method: "POST", path: "/v1/runs/" + run + "/cancel", token: a.access}, 202); r.str("status") != "running" || r.str("id") != run {
			t.Errorf("cancel answered %s", r.Raw)
		}
		if r := b.waitStatusFor(a.access, id, 60*time.Second); r.str("status") != "planned" || r.str("error") != "plan cancelled" {
			t.Fatalf("after the cancel of a running plan: %s", r.Raw)
		}
		if r := b.waitRun(a.access, run, 30*time.Second); r.str("status") != "cancelled" || r.Body["started_at"] == nil {
			t.Fatalf("the cancelled plan run: %s", r.Raw)
		}
		b.expect(req{method: "POST", path: "/v1/runs/" + run + "/cancel", token: a.access}, 409)
	}

	// A running destroy.
	{
		run := b.expect(req{method: "DELETE", path: "/v1/provision/" + id, token: a.access}, 202).Body["run"].(map[string]any)["id"].(string)
		waitStarted("destroy")
		b.expect(req{method: "POST", path: "/v1/provision/" + id + "/cancel", token: a.access}, 202)
		r := b.waitStatusFor(a.access, id, 60*time.Second)
		if r.str("status") != "failed" || !strings.Contains(r.str("error"), "destroy cancelled: some resources may remain") {
			t.Fatalf("after the cancel of a running destroy: %s", r.Raw)
		}
		if r := b.waitRun(a.access, run, 30*time.Second); r.str("status") != "cancelled" {
			t.Fatalf("the cancelled destroy run: %s", r.Raw)
		}
		if n := b.count("SELECT count(*) FROM tf_state_locks"); n != 0 {
			t.Errorf("%d state locks left", n)
		}
	}
}

// TestCancelDeafRunKilledAfterGrace: a run whose command ignores SIGINT
// (a wrapper that traps it, then sleeps before Terraform) is killed once
// the cancel grace period (2 s here; SHARDFORM_CANCEL_GRACE) is over: the
// run ends cancelled, the request back to pending, long before the sleep
// would have ended.
func TestCancelDeafRunKilledAfterGrace(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	started := filepath.Join(dir, "started")
	const grace = 2 * time.Second
	wrap := `case "$1" in plan) trap '' INT; : > ` + started + `; sleep 60 >/dev/null 2>&1 </dev/null ;; esac`
	b := setup(t, setupOpts{provisioning: true, terraformWrap: wrap, cancelGrace: grace})
	a := b.bootstrap("ops@example.com")
	id := b.expect(req{method: "POST", path: "/v1/provision", token: a.access, body: localBody("web-1")}, 201).str("id")
	run := b.expect(req{method: "POST", path: "/v1/provision/" + id + "/plan", token: a.access}, 202).Body["run"].(map[string]any)["id"].(string)
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := os.Stat(started); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the plan never started")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancelled := time.Now()
	b.expect(req{method: "POST", path: "/v1/runs/" + run + "/cancel", token: a.access}, 202)
	r := b.waitRun(a.access, run, 45*time.Second)
	took := time.Since(cancelled)
	if r.str("status") != "cancelled" {
		t.Fatalf("the deaf run after the cancel: %s", r.Raw)
	}
	// Explicit bounds the issue demands: killed after the grace period (the
	// interrupt was ignored), not at the end of the 60 s sleep.
	if took < grace || took > 30*time.Second {
		t.Errorf("the deaf run ended %v after the cancel, want between the %v grace and 30 s", took, grace)
	}
	if got := b.expect(req{method: "GET", path: "/v1/provision/" + id, token: a.access}, 200); got.str("status") != "pending" {
		t.Errorf("request after the cancel: %s", got.Raw)
	}
}
