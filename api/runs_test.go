package api_test

import (
	"bufio"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/shardform/shardform/providers"
)

// TestRuns: every plan, apply, destroy and refresh is a run with its own
// status, timings, worker, Terraform version, exit code, changes and logs;
// with SHARDFORM_PLAN_RENDER=on-demand a plan run's JSON plan is rendered
// when first asked for; runs are the caller's organization's only.
func TestRuns(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{provisioning: true, planRender: "on-demand"})
	a := b.bootstrap("ops@example.com")
	tok := a.access
	id := b.expect(req{method: "POST", path: "/v1/provision", token: tok, body: localBody("web-1")}, 201).str("id")

	queued := b.expect(req{method: "POST", path: "/v1/provision/" + id + "/plan", token: tok}, 202)
	run, _ := queued.Body["run"].(map[string]any)
	if run == nil || run["kind"] != "plan" || run["provision_id"] != id {
		t.Fatalf("plan answered without its run: %s", queued.Raw)
	}
	planID := run["id"].(string)
	// One run at a time per request: a second plan while the first is
	// queued or running is refused, naming it.
	if r := b.do(req{method: "POST", path: "/v1/provision/" + id + "/plan", token: tok}); r.Status != 409 {
		t.Errorf("second plan: %d %s", r.Status, r.Raw)
	}
	plan := b.waitRun(tok, planID, 90*time.Second)
	if plan.str("status") != "succeeded" || plan.Body["exit_code"] != float64(0) || plan.str("worker") == "" ||
		!strings.HasPrefix(plan.str("terraform_version"), "1.") || plan.Body["started_at"] == nil || plan.Body["finished_at"] == nil {
		t.Fatalf("plan run: %s", plan.Raw)
	}
	changes, _ := plan.Body["changes"].(map[string]any)
	resources, _ := changes["resources"].([]any)
	if changes["add"] != float64(1) || len(resources) != 1 {
		t.Fatalf("plan run changes: %v", changes)
	}
	if rc := resources[0].(map[string]any); rc["address"] != "terraform_data.node" || rc["type"] != "terraform_data" || rc["action"] != "create" {
		t.Errorf("resource change %v", rc)
	}
	if got := b.expect(req{method: "GET", path: "/v1/provision/" + id, token: tok}, 200); got.str("status") != "planned" || got.str("plan_run_id") != planID {
		t.Errorf("request after the plan run: %s", got.Raw)
	}
	logs := b.expect(req{method: "GET", path: "/v1/runs/" + planID + "/logs", token: tok}, 200)
	if !strings.Contains(string(logs.Raw), "=== plan ===") || logs.Body["running"] != false {
		t.Errorf("plan run logs: %s", logs.Raw)
	}

	// Plan review: rendered on the first call, then stored.
	if r := b.expect(req{method: "GET", path: "/v1/runs/" + planID, token: tok}, 200); r.Body["plan_rendered"] != false {
		t.Errorf("rendered before anyone asked: %s", r.Raw)
	}
	review := b.expect(req{method: "GET", path: "/v1/runs/" + planID + "/plan", token: tok, timeout: 60 * time.Second}, 200)
	rcs, _ := review.Body["resource_changes"].([]any)
	if len(rcs) != 1 || rcs[0].(map[string]any)["address"] != "terraform_data.node" || review.Body["configuration"] != nil {
		t.Fatalf("JSON plan: %s", review.Raw)
	}
	rendered := b.expect(req{method: "GET", path: "/v1/runs/" + planID, token: tok}, 200)
	rc := rendered.Body["changes"].(map[string]any)["resources"].([]any)[0].(map[string]any)
	after, _ := rc["after"].(map[string]any)
	if rendered.Body["plan_rendered"] != true || rc["action"] != "create" || after == nil {
		t.Errorf("run after the review: %s", rendered.Raw)
	}

	// Apply: its own run; a run that has ended cannot be cancelled.
	applyID := b.expect(req{method: "POST", path: "/v1/provision/" + id + "/apply", token: tok}, 202).Body["run"].(map[string]any)["id"].(string)
	if r := b.waitRun(tok, applyID, 90*time.Second); r.str("status") != "succeeded" || r.str("kind") != "apply" || r.Body["exit_code"] != float64(0) {
		t.Fatalf("apply run: %s", r.Raw)
	}
	b.expect(req{method: "POST", path: "/v1/runs/" + applyID + "/cancel", token: tok}, 409)
	b.expect(req{method: "GET", path: "/v1/runs/" + applyID + "/plan", token: tok}, 409)
	if r := b.waitStatus(tok, id); r.str("status") != "applied" {
		t.Fatalf("request after the apply run: %s", r.Raw)
	}

	// Refresh of the local driver (terraform_data): nothing can drift.
	b.expect(req{method: "POST", path: "/v1/provision/" + id + "/refresh", token: tok}, 202)
	refresh := b.waitRun(tok, b.latestRun(tok, id), 90*time.Second)
	if refresh.str("kind") != "refresh" || refresh.str("status") != "succeeded" || refresh.Body["drifted"] != false || refresh.Body["exit_code"] != float64(0) {
		t.Errorf("refresh run: %s", refresh.Raw)
	}
	if got := b.expect(req{method: "GET", path: "/v1/provision/" + id, token: tok}, 200); got.str("status") != "applied" || got.Body["drift"].(map[string]any)["drifted"] != false {
		t.Errorf("request after the refresh: %s", got.Raw)
	}

	all := b.expect(req{method: "GET", path: "/v1/provision/" + id + "/runs", token: tok}, 200).list()
	if len(all) != 3 || all[0]["kind"] != "refresh" || all[1]["kind"] != "apply" || all[2]["kind"] != "plan" {
		t.Errorf("runs, newest first: %v", all)
	}
	if l := b.expect(req{method: "GET", path: "/v1/provision/" + id + "/runs?kind=apply", token: tok}, 200).list(); len(l) != 1 || l[0]["id"] != applyID {
		t.Errorf("apply runs: %v", l)
	}
	b.expect(req{method: "GET", path: "/v1/provision/" + id + "/runs?kind=deploy", token: tok}, 400)
	b.expect(req{method: "POST", path: "/v1/runs/" + applyID + "/cancel?force=maybe", token: tok}, 400)

	// Another organization sees none of it; a token without
	// provision:read reads none of it.
	other := b.register("other@example.com")
	for _, r := range []req{
		{method: "GET", path: "/v1/runs/" + planID}, {method: "GET", path: "/v1/runs/" + planID + "/logs"},
		{method: "GET", path: "/v1/runs/" + planID + "/plan"}, {method: "POST", path: "/v1/runs/" + planID + "/cancel"},
		{method: "GET", path: "/v1/provision/" + id + "/runs"}, {method: "POST", path: "/v1/provision/" + id + "/refresh"},
	} {
		r.token = other.access
		b.expect(r, 404)
	}
	nodesOnly := b.apiToken(a, "nodes:read")
	b.expect(req{method: "GET", path: "/v1/runs/" + planID, token: nodesOnly}, 403)
	b.expect(req{method: "GET", path: "/v1/runs/" + planID + "/plan", token: nodesOnly}, 403)
	reader := b.apiToken(a, "provision:read")
	b.expect(req{method: "POST", path: "/v1/provision/" + id + "/refresh", token: reader}, 403)
	b.expect(req{method: "GET", path: "/v1/runs/" + planID, token: reader}, 200)
}

// TestRunLogsFollow: following a run streams its output and ends with the
// run's status and exit code.
func TestRunLogsFollow(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{provisioning: true})
	a := b.bootstrap("ops@example.com")
	base := b.listen()
	id := b.expect(req{method: "POST", path: "/v1/provision", token: a.access, body: localBody("web-1")}, 201).str("id")
	runID := b.expect(req{method: "POST", path: "/v1/provision/" + id + "/plan", token: a.access}, 202).Body["run"].(map[string]any)["id"].(string)
	hreq, err := http.NewRequestWithContext(t.Context(), "GET", base+"/v1/runs/"+runID+"/logs?follow=1", nil)
	if err != nil {
		t.Fatal(err)
	}
	hreq.Header.Set("Authorization", "Bearer "+a.access)
	resp, err := http.DefaultClient.Do(hreq)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("follow: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var text strings.Builder
	sc := bufio.NewScanner(resp.Body)
	end := ""
	for sc.Scan() {
		line := sc.Text()
		text.WriteString(line + "\n")
		if strings.HasPrefix(line, "event: end") && sc.Scan() {
			end = sc.Text()
			break
		}
	}
	if !strings.Contains(text.String(), "=== plan ===") || !strings.Contains(end, `"status":"succeeded"`) || !strings.Contains(end, `"exit_code":0`) {
		t.Errorf("stream:\n%s\nend: %s", text.String(), end)
	}
}

// TestCancelForce: a forced cancel kills a running apply at once (exit
// code -1: killed by a signal), where a plain cancel lets Terraform stop
// by itself (it exits with 1); both end the run cancelled and the request
// failed, saying its resources may be partial, with no state lock left.
func TestCancelForce(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		query string
		exit  float64
		mode  string
	}{
		{"interrupt", "", 1, "cancel"},
		{"force", "?force=true", -1, "force"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, setupOpts{provisioning: true, drivers: []providers.Driver{slowLocal{providers.Local{ApplyDelay: 10 * time.Minute}}}})
			a := b.bootstrap("ops@example.com")
			body := map[string]any{"provider": "slow", "region": "local", "instance_type": "local-small", "name": "web-1"}
			id := b.expect(req{method: "POST", path: "/v1/provision", token: a.access, body: body}, 201).str("id")
			b.expect(req{method: "POST", path: "/v1/provision/" + id + "/plan", token: a.access}, 202)
			if r := b.waitStatus(a.access, id); r.str("status") != "planned" {
				t.Fatalf("plan: %s", r.Raw)
			}
			runID := b.expect(req{method: "POST", path: "/v1/provision/" + id + "/apply", token: a.access}, 202).Body["run"].(map[string]any)["id"].(string)
			deadline := time.Now().Add(60 * time.Second)
			for !strings.Contains(string(b.expect(req{method: "GET", path: "/v1/runs/" + runID + "/logs", token: a.access}, 200).Raw), "Creating...") {
				if time.Now().After(deadline) {
					t.Fatal("the apply never started")
				}
				time.Sleep(50 * time.Millisecond)
			}
			if r := b.expect(req{method: "POST", path: "/v1/runs/" + runID + "/cancel" + tc.query, token: a.access}, 202); r.str("cancel_requested") != tc.mode || r.str("status") != "running" {
				t.Errorf("cancel answered %s", r.Raw)
			}
			run := b.waitRun(a.access, runID, 60*time.Second)
			if run.str("status") != "cancelled" || run.Body["exit_code"] != tc.exit || !strings.Contains(run.str("error"), "apply cancelled") {
				t.Errorf("run after the cancel: %s", run.Raw)
			}
			r := b.waitStatusFor(a.access, id, 60*time.Second)
			if r.str("status") != "failed" || !strings.Contains(r.str("error"), "some resources may have been made") {
				t.Errorf("request after the cancel: %s", r.Raw)
			}
			// An interrupted Terraform unlocks by itself; a killed one
			// cannot, and the worker releases the run's lock when it ends.
			if n := b.count("SELECT count(*) FROM tf_state_locks"); n != 0 {
				t.Errorf("%d state locks left", n)
			}
		})
	}
}

// TestPeriodicDriftCheck: with SHARDFORM_DRIFT_INTERVAL set, every applied
// request gets refresh runs by itself; requests not applied get none.
func TestPeriodicDriftCheck(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{provisioning: true, driftInterval: time.Second})
	a := b.bootstrap("ops@example.com")
	applied := b.expect(req{method: "POST", path: "/v1/provision", token: a.access, body: localBody("web-1")}, 201).str("id")
	pending := b.expect(req{method: "POST", path: "/v1/provision", token: a.access, body: localBody("web-2")}, 201).str("id")
	b.expect(req{method: "POST", path: "/v1/provision/" + applied + "/plan", token: a.access}, 202)
	b.waitStatus(a.access, applied)
	b.expect(req{method: "POST", path: "/v1/provision/" + applied + "/apply", token: a.access}, 202)
	if r := b.waitStatus(a.access, applied); r.str("status") != "applied" {
		t.Fatalf("apply: %s", r.Raw)
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		runs := b.expect(req{method: "GET", path: "/v1/provision/" + applied + "/runs?kind=refresh", token: a.access}, 200).list()
		if len(runs) > 0 && runs[len(runs)-1]["status"] == "succeeded" {
			if runs[len(runs)-1]["drifted"] != false {
				t.Errorf("periodic refresh of the local driver: %v", runs[len(runs)-1])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no periodic refresh run after 90 s: %v", runs)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if l := b.expect(req{method: "GET", path: "/v1/provision/" + pending + "/runs", token: a.access}, 200).list(); len(l) != 0 {
		t.Errorf("a pending request got runs: %v", l)
	}
	// The sweep and the refresh runs it queued wait behind users' runs
	// (River priority 4); the user's plan and apply do not (1).
	runs := b.expect(req{method: "GET", path: "/v1/provision/" + applied + "/runs", token: a.access}, 200).list()
	for _, r := range runs {
		want := 1
		if r["kind"] == "refresh" {
			want = 4
		}
		if got := b.jobPriority(r["id"].(string)); got != want {
			t.Errorf("%s run's job has priority %d, want %d", r["kind"], got, want)
		}
	}
	var sweeps, background int
	if err := b.pool.QueryRow(t.Context(), "SELECT count(*), count(*) FILTER (WHERE priority = 4) FROM river_job WHERE kind = 'provision_drift_sweep'").Scan(&sweeps, &background); err != nil || sweeps == 0 || background != sweeps {
		t.Errorf("drift sweep jobs %d, %d of them at priority 4 (%v)", sweeps, background, err)
	}
}

// jobPriority is the River priority of a run's job.
func (b *bundle) jobPriority(runID string) int {
	b.t.Helper()
	var p int
	if err := b.pool.QueryRow(b.t.Context(), "SELECT j.priority FROM provision_runs r JOIN river_job j ON j.id = r.job_id WHERE r.id = $1", runID).Scan(&p); err != nil {
		b.t.Fatalf("priority of run %s's job: %v", runID, err)
	}
	return p
}

// TestRunsOfOldAndLostJobs: a plan job queued before runs existed (no run
// id in its args) is given a run and carried out; a run whose job ended
// without it (discarded) is ended failed, with its request, by the rescuer.
func TestRunsOfOldAndLostJobs(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{provisioning: true})
	a := b.bootstrap("ops@example.com")
	ctx := t.Context()

	old := b.expect(req{method: "POST", path: "/v1/provision", token: a.access, body: localBody("web-1")}, 201).str("id")
	if _, err := b.pool.Exec(ctx, "UPDATE provision_requests SET status = 'planning' WHERE id = $1", old); err != nil {
		t.Fatal(err)
	}
	if _, err := b.pool.Exec(ctx, `INSERT INTO river_job (kind, args, queue, state, max_attempts, priority, scheduled_at)
		VALUES ('provision_plan', jsonb_build_object('organization_id', $1::text, 'provision_id', $2::text), 'terraform', 'available', 5, 1, now())`, a.orgID, old); err != nil {
		t.Fatal(err)
	}
	if r := b.waitStatus(a.access, old); r.str("status") != "planned" {
		t.Fatalf("request of an old plan job: %s", r.Raw)
	}
	runs := b.expect(req{method: "GET", path: "/v1/provision/" + old + "/runs", token: a.access}, 200).list()
	if len(runs) != 1 || runs[0]["kind"] != "plan" || runs[0]["status"] != "succeeded" {
		t.Errorf("runs of an old plan job: %v", runs)
	}

	lost := b.expect(req{method: "POST", path: "/v1/provision", token: a.access, body: localBody("web-2")}, 201).str("id")
	var runID string
	err := b.pool.QueryRow(ctx, `WITH j AS (
			INSERT INTO river_job (kind, args, queue, state, max_attempts, priority, scheduled_at, finalized_at, attempt)
			VALUES ('provision_plan', '{}', 'terraform', 'discarded', 5, 1, now(), now(), 5) RETURNING id)
		INSERT INTO provision_runs (organization_id, provision_id, kind, status, job_id, attempt)
		SELECT $1, $2, 'plan', 'running', j.id, 5 FROM j RETURNING id`, a.orgID, lost).Scan(&runID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.pool.Exec(ctx, "UPDATE provision_requests SET status = 'planning' WHERE id = $1", lost); err != nil {
		t.Fatal(err)
	}
	run := b.waitRun(a.access, runID, 60*time.Second)
	if run.str("status") != "failed" || !strings.Contains(run.str("error"), "ended (discarded) without an outcome") {
		t.Errorf("run of a discarded job: %s", run.Raw)
	}
	if r := b.waitStatus(a.access, lost); r.str("status") != "failed" {
		t.Errorf("request of a discarded job: %s", r.Raw)
	}
}
