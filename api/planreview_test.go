package api_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shardform/shardform/providers"
)

// reviewSecret is a value the review driver's configuration marks
// sensitive: no answer may show it.
const reviewSecret = "s3cr3t-review-value"

// reviewLocal is the local driver with what a plan review must handle: a
// sensitive value in the resource's input, a sensitive output, and a data
// source that depends on the resource, so Terraform reads it only once the
// resource is made (a "read" change of the plan).
type reviewLocal struct {
	providers.Local
	peerState string // the state file the data source reads
}

func (reviewLocal) Name() string { return "review" }

func (l reviewLocal) Render(req providers.Request) ([]byte, error) {
	raw, err := l.Local.Render(req)
	if err != nil {
		return nil, err
	}
	var cfg map[string]any
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, err
	}
	node := cfg["resource"].(map[string]any)["terraform_data"].(map[string]any)["node"].(map[string]any)
	// Not in input: terraform_data copies its input to its output, which
	// Terraform does not mark sensitive once applied.
	node["triggers_replace"] = map[string]any{"secret": `${sensitive("` + reviewSecret + `")}`}
	cfg["data"] = map[string]any{"terraform_remote_state": map[string]any{"peer": map[string]any{
		"backend": "local", "config": map[string]any{"path": l.peerState}, "depends_on": []string{"terraform_data.node"},
	}}}
	cfg["output"].(map[string]any)["secret"] = map[string]any{"value": "${terraform_data.node.triggers_replace.secret}", "sensitive": true}
	return json.Marshal(cfg)
}

func newReviewLocal(t *testing.T) reviewLocal {
	t.Helper()
	path := filepath.Join(t.TempDir(), "peer.tfstate")
	if err := os.WriteFile(path, []byte(`{"version":4,"terraform_version":"1.11.4","serial":1,"lineage":"peer","outputs":{},"resources":[]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	return reviewLocal{peerState: path}
}

// changesOf is a run's resource changes by address.
func changesOf(t *testing.T, run response) (map[string]any, map[string]map[string]any) {
	t.Helper()
	changes, _ := run.Body["changes"].(map[string]any)
	if changes == nil {
		t.Fatalf("run without changes: %s", run.Raw)
	}
	byAddr := map[string]map[string]any{}
	list, _ := changes["resources"].([]any)
	for _, c := range list {
		rc := c.(map[string]any)
		byAddr[rc["address"].(string)] = rc
	}
	return changes, byAddr
}

// waitRendered polls a plan run (never asking for its plan) until its plan
// has been rendered.
func (b *bundle) waitRendered(token, runID string, limit time.Duration) response {
	b.t.Helper()
	deadline := time.Now().Add(limit)
	for {
		r := b.expect(req{method: "GET", path: "/v1/runs/" + runID, token: token}, 200)
		if r.Body["plan_rendered"] == true {
			return r
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("run %s not rendered after %v: %s", runID, limit, r.Raw)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestPlanReviewEager: with the default SHARDFORM_PLAN_RENDER (eager) a
// plan run lists every change Terraform reports (a data source's read
// too) with change_summary's counts as it succeeds; its render job,
// queued with it below users' runs (priority 4), then gives each change
// its masked before and after, no one asking for the plan; GET
// /v1/runs/{id}/plan answers 200 at once. A second plan of the applied
// request lists its unchanged resources as no-op.
func TestPlanReviewEager(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{provisioning: true, drivers: []providers.Driver{newReviewLocal(t)}})
	a := b.bootstrap("ops@example.com")
	tok := a.access
	body := map[string]any{"provider": "review", "region": "local", "instance_type": "local-small", "name": "web-1"}
	id := b.expect(req{method: "POST", path: "/v1/provision", token: tok, body: body}, 201).str("id")
	planID := b.expect(req{method: "POST", path: "/v1/provision/" + id + "/plan", token: tok}, 202).Body["run"].(map[string]any)["id"].(string)
	plan := b.waitRun(tok, planID, 90*time.Second)
	if plan.str("status") != "succeeded" {
		t.Fatalf("plan run: %s", plan.Raw)
	}
	counts, byAddr := changesOf(t, plan)
	if counts["add"] != float64(1) || counts["change"] != float64(0) || counts["destroy"] != float64(0) {
		t.Errorf("counts %v, want Terraform's change_summary (add 1: a read is not counted)", counts)
	}
	if byAddr["terraform_data.node"]["action"] != "create" || byAddr["data.terraform_remote_state.peer"]["action"] != "read" {
		t.Errorf("the plan's changes: %s", plan.Raw)
	}
	if got := b.jobPriority(planID); got != 1 {
		t.Errorf("plan job priority %d, want 1", got)
	}
	var renderPriority int
	if err := b.pool.QueryRow(t.Context(), "SELECT priority FROM river_job WHERE kind = 'provision_render_plan' AND args->>'run_id' = $1", planID).Scan(&renderPriority); err != nil || renderPriority != 4 {
		t.Errorf("render job of the plan: priority %d, %v; want one at 4", renderPriority, err)
	}

	rendered := b.waitRendered(tok, planID, 60*time.Second)
	if strings.Contains(string(rendered.Raw), reviewSecret) {
		t.Fatalf("the sensitive value is in the run: %s", rendered.Raw)
	}
	_, byAddr = changesOf(t, rendered)
	node := byAddr["terraform_data.node"]
	after, _ := node["after"].(map[string]any)
	input, _ := after["input"].(map[string]any)
	triggers, _ := after["triggers_replace"].(map[string]any)
	if node["action"] != "create" || input["name"] != "web-1" || triggers["secret"] != "(sensitive value)" {
		t.Errorf("rendered change of the node: %v", node)
	}
	if byAddr["data.terraform_remote_state.peer"]["action"] != "read" {
		t.Errorf("rendered changes lack the read: %s", rendered.Raw)
	}
	review := b.expect(req{method: "GET", path: "/v1/runs/" + planID + "/plan", token: tok, timeout: 5 * time.Second}, 200)
	if strings.Contains(string(review.Raw), reviewSecret) || !strings.Contains(string(review.Raw), `"(sensitive value)"`) {
		t.Errorf("JSON plan: %s", review.Raw)
	}

	// Applied (the sensitive output is read from the new state version),
	// then planned again: nothing to do, every resource a no-op.
	applyID := b.expect(req{method: "POST", path: "/v1/provision/" + id + "/apply", token: tok}, 202).Body["run"].(map[string]any)["id"].(string)
	if r := b.waitRun(tok, applyID, 90*time.Second); r.str("status") != "succeeded" {
		t.Fatalf("apply run: %s", r.Raw)
	}
	if r := b.waitStatus(tok, id); r.str("status") != "applied" || r.Body["node_id"] == nil {
		t.Fatalf("request after the apply: %s", r.Raw)
	}
	againID := b.expect(req{method: "POST", path: "/v1/provision/" + id + "/plan", token: tok}, 202).Body["run"].(map[string]any)["id"].(string)
	if r := b.waitRun(tok, againID, 90*time.Second); r.str("status") != "succeeded" {
		t.Fatalf("second plan run: %s", r.Raw)
	}
	again := b.waitRendered(tok, againID, 60*time.Second)
	counts, byAddr = changesOf(t, again)
	before, _ := byAddr["terraform_data.node"]["before"].(map[string]any)
	triggers, _ = before["triggers_replace"].(map[string]any)
	if counts["add"] != float64(0) || counts["change"] != float64(0) || byAddr["terraform_data.node"]["action"] != "no-op" || triggers["secret"] != "(sensitive value)" {
		t.Errorf("second plan: %s", again.Raw)
	}
	if strings.Contains(string(again.Raw), reviewSecret) {
		t.Errorf("the sensitive value is in the second plan run: %s", again.Raw)
	}
	// The listed runs say the same, without their plans.
	runs := b.expect(req{method: "GET", path: "/v1/provision/" + id + "/runs?kind=plan", token: tok}, 200).list()
	if len(runs) != 2 || runs[0]["id"] != againID || runs[0]["plan_rendered"] != true || runs[1]["plan_rendered"] != true {
		t.Errorf("listed plan runs: %v", runs)
	}
}

// TestPlanFilesDropped: a plan run's saved plan (sealed, with the
// variables' values) is dropped once a newer plan of the request
// supersedes it or the request is applied, except while its render job is
// still to run (that job drops it after rendering).
func TestPlanFilesDropped(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{provisioning: true, planRender: "on-demand"})
	a := b.bootstrap("ops@example.com")
	tok := a.access
	ctx := t.Context()
	hasPlan := func(runID string) bool {
		t.Helper()
		var has bool
		if err := b.pool.QueryRow(ctx, "SELECT plan_file IS NOT NULL FROM provision_runs WHERE id = $1", runID).Scan(&has); err != nil {
			t.Fatal(err)
		}
		return has
	}
	plan := func(id string) string {
		t.Helper()
		runID := b.expect(req{method: "POST", path: "/v1/provision/" + id + "/plan", token: tok}, 202).Body["run"].(map[string]any)["id"].(string)
		if r := b.waitRun(tok, runID, 90*time.Second); r.str("status") != "succeeded" {
			t.Fatalf("plan run: %s", r.Raw)
		}
		return runID
	}
	id := b.expect(req{method: "POST", path: "/v1/provision", token: tok, body: localBody("web-1")}, 201).str("id")
	first := plan(id)
	if !hasPlan(first) {
		t.Fatal("a new plan run has no saved plan")
	}
	second := plan(id)
	if hasPlan(first) || !hasPlan(second) {
		t.Errorf("after a second plan: first keeps its plan %v, second %v; want false, true", hasPlan(first), hasPlan(second))
	}
	b.expect(req{method: "GET", path: "/v1/runs/" + first + "/plan", token: tok}, 409)

	// A render still to run keeps the plan it renders.
	if _, err := b.pool.Exec(ctx, `INSERT INTO river_job (kind, args, queue, state, max_attempts, priority, scheduled_at)
		VALUES ('provision_render_plan', jsonb_build_object('organization_id', $1::text, 'run_id', $2::text), 'terraform', 'scheduled', 3, 4, now() + interval '1 hour')`, a.orgID, second); err != nil {
		t.Fatal(err)
	}
	third := plan(id)
	if !hasPlan(second) {
		t.Error("a plan waiting for its render lost its saved plan")
	}
	if _, err := b.pool.Exec(ctx, "DELETE FROM river_job WHERE kind = 'provision_render_plan'"); err != nil {
		t.Fatal(err)
	}

	applyID := b.expect(req{method: "POST", path: "/v1/provision/" + id + "/apply", token: tok}, 202).Body["run"].(map[string]any)["id"].(string)
	if r := b.waitRun(tok, applyID, 90*time.Second); r.str("status") != "succeeded" {
		t.Fatalf("apply run: %s", r.Raw)
	}
	for _, run := range []string{first, second, third} {
		if hasPlan(run) {
			t.Errorf("plan run %s keeps its saved plan after the apply", run)
		}
	}
}
