package api_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shardform/shardform/internal/statetest"
	"github.com/shardform/shardform/providers"
	"github.com/shardform/shardform/seal"
	"github.com/shardform/shardform/terraform"
)

func localBody(name string) map[string]any {
	return map[string]any{"provider": "local", "region": "local", "instance_type": "local-small", "name": name, "labels": map[string]string{"game": "valheim"}}
}

func TestProvisionLifecycle(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{provisioning: true})
	a := b.bootstrap("ops@example.com")

	created := b.expect(req{method: "POST", path: "/v1/provision", token: a.access, body: localBody("web-1")}, 201)
	id := created.str("id")
	if created.str("status") != "pending" {
		t.Fatalf("created %s", created.Raw)
	}
	// Apply needs a plan first.
	r := b.expect(req{method: "POST", path: "/v1/provision/" + id + "/apply", token: a.access}, 409)
	if !strings.Contains(r.errMsg(), "pending") {
		t.Errorf("apply from pending: %q", r.errMsg())
	}

	if s := b.expect(req{method: "POST", path: "/v1/provision/" + id + "/plan", token: a.access}, 202).str("status"); s != "planning" {
		t.Fatalf("plan answered status %s", s)
	}
	planned := b.waitStatus(a.access, id)
	sum, _ := planned.Body["plan_summary"].(map[string]any)
	if planned.str("status") != "planned" || sum["add"] != float64(1) || sum["destroy"] != float64(0) {
		t.Fatalf("after plan: %s", planned.Raw)
	}
	var sealed []byte
	if err := b.pool.QueryRow(t.Context(), "SELECT plan_file FROM provision_requests WHERE id = $1", id).Scan(&sealed); err != nil || len(sealed) == 0 {
		t.Fatalf("plan file not stored: %v", err)
	}

	b.expect(req{method: "POST", path: "/v1/provision/" + id + "/apply", token: a.access}, 202)
	applied := b.waitStatus(a.access, id)
	if applied.str("status") != "applied" || applied.Body["node_id"] == nil {
		t.Fatalf("after apply: %s", applied.Raw)
	}
	nodes := b.expect(req{method: "GET", path: "/v1/nodes", token: a.access}, 200).list()
	if len(nodes) != 1 {
		t.Fatalf("nodes %v", nodes)
	}
	n := nodes[0]
	if n["id"] != applied.Body["node_id"] || n["name"] != "web-1" || n["vcpu"] != float64(1) || n["memory_mb"] != float64(1024) ||
		n["disk_gb"] != float64(10) || n["ipv4"] != "127.0.0.1" || n["provision_id"] != id || n["server_id"] == "" {
		t.Errorf("node %v", n)
	}
	logs := b.expect(req{method: "GET", path: "/v1/provision/" + id + "/logs", token: a.access}, 200)
	text := string(logs.Raw)
	for _, want := range []string{"=== plan ===", "=== apply ===", "Apply complete! Resources: 1 added"} {
		if !strings.Contains(text, want) {
			t.Errorf("logs lack %q", want)
		}
	}

	// Node updates: cordon and relabel; bad status refused.
	nodeID := n["id"].(string)
	up := b.expect(req{method: "PUT", path: "/v1/nodes/" + nodeID, token: a.access, body: map[string]any{"status": "cordoned", "labels": map[string]string{"tier": "2"}}}, 200)
	if up.str("status") != "cordoned" || up.Body["labels"].(map[string]any)["tier"] != "2" || up.str("name") != "web-1" {
		t.Errorf("updated node %s", up.Raw)
	}
	b.expect(req{method: "PUT", path: "/v1/nodes/" + nodeID, token: a.access, body: map[string]any{"status": "gone"}}, 400)
	b.expect(req{method: "DELETE", path: "/v1/nodes/" + nodeID, token: a.access}, 409)

	// A second request may not take the live name.
	b.expect(req{method: "POST", path: "/v1/provision", token: a.access, body: localBody("web-1")}, 409)

	b.expect(req{method: "DELETE", path: "/v1/provision/" + id, token: a.access}, 202)
	destroyed := b.waitStatus(a.access, id)
	if destroyed.str("status") != "destroyed" || destroyed.Body["node_id"] != nil {
		t.Fatalf("after destroy: %s", destroyed.Raw)
	}
	if l := b.expect(req{method: "GET", path: "/v1/nodes", token: a.access}, 200).list(); len(l) != 0 {
		t.Errorf("nodes after destroy: %v", l)
	}
	b.expect(req{method: "GET", path: "/v1/nodes/" + nodeID, token: a.access}, 404)
	// The name is free again.
	b.expect(req{method: "POST", path: "/v1/provision", token: a.access, body: localBody("web-1")}, 201)
	list := b.expect(req{method: "GET", path: "/v1/provision?status=destroyed", token: a.access}, 200)
	if len(list.list()) != 1 || list.list()[0]["id"] != id {
		t.Errorf("destroyed filter %s", list.Raw)
	}
}

func TestProvisionValidation(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{provisioning: true})
	a := b.bootstrap("ops@example.com")
	body := func(mut func(m map[string]any)) map[string]any {
		m := localBody("web-1")
		mut(m)
		return m
	}
	tests := []struct {
		name   string
		body   any
		status int
		want   string
	}{
		{"unknown provider", body(func(m map[string]any) { m["provider"] = "gcp" }), 400, "provider: must be one of: local"},
		{"unknown region", body(func(m map[string]any) { m["region"] = "mars" }), 400, "region: must be one of local's regions: local"},
		{"unknown type", body(func(m map[string]any) { m["instance_type"] = "huge" }), 400, "instance_type: must be one of the instance types local offers in local: local-small, local-medium, local-large"},
		{"name not a DNS label", body(func(m map[string]any) { m["name"] = "Web_1" }), 400, "name: must be a DNS label"},
		{"name too long", body(func(m map[string]any) { m["name"] = strings.Repeat("a", 64) }), 400, "name: must be a DNS label"},
		{"bad ssh key", body(func(m map[string]any) { m["ssh_keys"] = []string{"not a key"} }), 400, "ssh_keys[0]"},
		{"unknown field", body(func(m map[string]any) { m["size"] = 3 }), 400, "size: unknown field"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := b.count("SELECT count(*) FROM provision_requests")
			r := b.expect(req{method: "POST", path: "/v1/provision", token: a.access, body: tt.body}, tt.status)
			if !strings.Contains(r.errMsg(), tt.want) {
				t.Errorf("error %q, want %q", r.errMsg(), tt.want)
			}
			if after := b.count("SELECT count(*) FROM provision_requests"); after != before {
				t.Error("a rejected request was stored")
			}
		})
	}
	b.expect(req{method: "GET", path: "/v1/provision?status=sleeping", token: a.access}, 400)
}

func TestProvisionIdempotencyKey(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{provisioning: true})
	a := b.bootstrap("ops@example.com")
	key := map[string]string{"Idempotency-Key": "k-1"}
	first := b.expect(req{method: "POST", path: "/v1/provision", token: a.access, header: key, body: localBody("web-1")}, 201)
	again := b.expect(req{method: "POST", path: "/v1/provision", token: a.access, header: key, body: localBody("web-1")}, 200)
	if again.str("id") != first.str("id") {
		t.Fatalf("replay returned %s, want %s", again.str("id"), first.str("id"))
	}
	r := b.expect(req{method: "POST", path: "/v1/provision", token: a.access, header: key, body: localBody("web-2")}, 422)
	if !strings.Contains(r.errMsg(), "Idempotency-Key") {
		t.Errorf("error %q", r.errMsg())
	}
	if n := b.count("SELECT count(*) FROM provision_requests"); n != 1 {
		t.Errorf("%d requests stored, want 1", n)
	}
}

func TestProvisionConcurrentPlans(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{provisioning: true})
	a := b.bootstrap("ops@example.com")
	id := b.expect(req{method: "POST", path: "/v1/provision", token: a.access, body: localBody("web-1")}, 201).str("id")
	type answer struct {
		status int
		err    error
	}
	answers := make(chan answer, 2)
	for range 2 {
		go func() {
			r, err := b.try(req{method: "POST", path: "/v1/provision/" + id + "/plan", token: a.access})
			answers <- answer{r.Status, err}
		}()
	}
	got := map[int]int{}
	for range 2 {
		ans := <-answers
		if ans.err != nil {
			t.Fatal(ans.err)
		}
		got[ans.status]++
	}
	if got[202] != 1 || got[409] != 1 {
		t.Fatalf("two plans at once answered %v, want one 202 and one 409", got)
	}
	b.waitStatus(a.access, id)
	if n := b.count("SELECT count(*) FROM river_job WHERE kind = 'provision_plan'"); n != 1 {
		t.Errorf("%d plan jobs, want 1", n)
	}
}

// brokenDriver renders a configuration Terraform rejects, as a cloud with a
// bad credential would fail a plan.
type brokenDriver struct{ providers.Local }

func (brokenDriver) Name() string { return "broken" }

func (brokenDriver) Render(providers.Request) ([]byte, error) {
	return []byte(`{"terraform":{"backend":{"pg":{}}},"output":{"x":{"value":"${terraform_data.missing.id}"}}}`), nil
}

func TestProvisionTerraformFailure(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{provisioning: true, drivers: []providers.Driver{brokenDriver{}}})
	a := b.bootstrap("ops@example.com")
	body := map[string]any{"provider": "broken", "region": "local", "instance_type": "local-small", "name": "bad"}
	id := b.expect(req{method: "POST", path: "/v1/provision", token: a.access, body: body}, 201).str("id")
	b.expect(req{method: "POST", path: "/v1/provision/" + id + "/plan", token: a.access}, 202)
	r := b.waitStatus(a.access, id)
	if r.str("status") != "failed" || !strings.Contains(r.str("error"), "Reference to undeclared resource") {
		t.Fatalf("failed plan: %s", r.Raw)
	}
	logs := b.expect(req{method: "GET", path: "/v1/provision/" + id + "/logs", token: a.access}, 200)
	if !strings.Contains(string(logs.Raw), "undeclared resource") {
		t.Errorf("log lacks Terraform's error: %s", logs.Raw)
	}
	if n := b.count("SELECT count(*) FROM nodes"); n != 0 {
		t.Errorf("%d nodes registered after a failure", n)
	}
	// A failed request can be planned again (and fails again here).
	b.expect(req{method: "POST", path: "/v1/provision/" + id + "/plan", token: a.access}, 202)
	if r := b.waitStatus(a.access, id); r.str("status") != "failed" {
		t.Errorf("second plan: %s", r.Raw)
	}
}

func TestProvisionStalePlan(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{provisioning: true})
	a := b.bootstrap("ops@example.com")
	id := b.expect(req{method: "POST", path: "/v1/provision", token: a.access, body: localBody("web-1")}, 201).str("id")
	b.expect(req{method: "POST", path: "/v1/provision/" + id + "/plan", token: a.access}, 202)
	b.waitStatus(a.access, id)

	// Someone changes the state behind the saved plan's back.
	changeState(t, b.pool, id)

	b.expect(req{method: "POST", path: "/v1/provision/" + id + "/apply", token: a.access}, 202)
	r := b.waitStatus(a.access, id)
	if r.str("status") != "failed" || !strings.Contains(r.str("error"), "plan is stale: plan again") {
		t.Fatalf("apply of a stale plan: %s", r.Raw)
	}
	if n := b.count("SELECT count(*) FROM nodes"); n != 0 {
		t.Errorf("%d nodes registered from a stale plan", n)
	}
}

// changeState applies another configuration to the request's state
// directly, as an operator running Terraform against the state endpoint
// with a credential of their own might.
func changeState(t *testing.T, pool *pgxpool.Pool, id string) {
	t.Helper()
	ctx := context.Background()
	bin, err := terraform.FindBinary(ctx, "", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r, err := terraform.NewRunner(terraform.Config{Binary: bin, DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	sealer, err := seal.New(bytes.Repeat([]byte{42}, seal.KeySize)) // newServer's key
	if err != nil {
		t.Fatal(err)
	}
	var org uuid.UUID
	if err := pool.QueryRow(ctx, "SELECT organization_id FROM provision_requests WHERE id = $1", id).Scan(&org); err != nil {
		t.Fatal(err)
	}
	backend := statetest.Serve(t, pool, sealer).Provision(t, org, uuid.MustParse(id))
	cfg, err := providers.Local{}.Render(providers.Request{ID: id, Name: "other", Region: "local", InstanceType: "local-small"})
	if err != nil {
		t.Fatal(err)
	}
	ws, err := r.Open(ctx, id, cfg, nil, backend)
	if err != nil {
		t.Fatal(err)
	}
	p, err := ws.Plan(ctx, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := ws.Apply(ctx, p.File, nil); err != nil {
		t.Fatal(err)
	}
}

func TestProvisionLogsFollow(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{provisioning: true})
	a := b.bootstrap("ops@example.com")
	base := b.listen()
	id := b.expect(req{method: "POST", path: "/v1/provision", token: a.access, body: localBody("web-1")}, 201).str("id")
	b.expect(req{method: "POST", path: "/v1/provision/" + id + "/plan", token: a.access}, 202)

	hr, _ := http.NewRequest("GET", base+"/v1/provision/"+id+"/logs?follow=1", nil)
	hr.Header.Set("Authorization", "Bearer "+a.access)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	resp, err := http.DefaultClient.Do(hr.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	var events []string
	var sawPlanOutput bool
	var end map[string]any
	sc := bufio.NewScanner(resp.Body)
	var event string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
			events = append(events, event)
		case strings.HasPrefix(line, "data: ") && event == "log":
			sawPlanOutput = sawPlanOutput || strings.Contains(line, "terraform_data.node")
		case strings.HasPrefix(line, "data: ") && event == "end":
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &end); err != nil {
				t.Fatal(err)
			}
		}
	}
	if end == nil || end["status"] != "planned" {
		t.Fatalf("stream ended with %v after events %v", end, events)
	}
	if !sawPlanOutput {
		t.Error("the stream carried no plan output")
	}
}

func TestProvisionTenantIsolation(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{provisioning: true})
	a := b.bootstrap("ops@example.com")
	other := b.register("other@example.com")
	id := b.expect(req{method: "POST", path: "/v1/provision", token: a.access, body: localBody("web-1")}, 201).str("id")
	b.expect(req{method: "POST", path: "/v1/provision/" + id + "/plan", token: a.access}, 202)
	b.waitStatus(a.access, id)
	b.expect(req{method: "POST", path: "/v1/provision/" + id + "/apply", token: a.access}, 202)
	nodeID := b.waitStatus(a.access, id).Body["node_id"].(string)

	before := b.snapshot()
	for _, r := range []req{
		{method: "GET", path: "/v1/provision/" + id},
		{method: "POST", path: "/v1/provision/" + id + "/plan"},
		{method: "POST", path: "/v1/provision/" + id + "/apply"},
		{method: "DELETE", path: "/v1/provision/" + id},
		{method: "GET", path: "/v1/provision/" + id + "/logs"},
		{method: "GET", path: "/v1/nodes/" + nodeID},
		{method: "PUT", path: "/v1/nodes/" + nodeID, body: map[string]any{"status": "cordoned"}},
		{method: "DELETE", path: "/v1/nodes/" + nodeID},
	} {
		t.Run(r.method+" "+r.path, func(t *testing.T) {
			r.token = other.access
			resp := b.expect(r, 404)
			if strings.Contains(string(resp.Raw), "web-1") {
				t.Errorf("leaked: %s", resp.Raw)
			}
		})
	}
	b.unchanged(before)
	if l := b.expect(req{method: "GET", path: "/v1/provision", token: other.access}, 200).list(); len(l) != 0 {
		t.Errorf("other organization lists %v", l)
	}
	if l := b.expect(req{method: "GET", path: "/v1/nodes", token: other.access}, 200).list(); len(l) != 0 {
		t.Errorf("other organization lists nodes %v", l)
	}
	// The same name is free in another organization.
	b.expect(req{method: "POST", path: "/v1/provision", token: other.access, body: localBody("web-1")}, 201)
}

func TestProvisionPermissions(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{provisioning: true})
	a := b.bootstrap("ops@example.com")
	read := b.apiToken(a, "provision:read", "nodes:read")
	r := b.expect(req{method: "POST", path: "/v1/provision", token: read, body: localBody("web-1")}, 403)
	if !strings.Contains(r.errMsg(), "provision:write") {
		t.Errorf("error %q", r.errMsg())
	}
	b.expect(req{method: "GET", path: "/v1/provision", token: read}, 200)
	b.expect(req{method: "GET", path: "/v1/provision/providers", token: read}, 200)
	none := b.apiToken(a, "planner:read")
	b.expect(req{method: "GET", path: "/v1/provision", token: none}, 403)
	b.expect(req{method: "GET", path: "/v1/nodes", token: none}, 403)
	write := b.apiToken(a, "provision:write")
	id := b.expect(req{method: "POST", path: "/v1/provision", token: write, body: localBody("web-1")}, 201).str("id")
	b.expect(req{method: "POST", path: "/v1/provision/" + id + "/plan", token: read}, 403)
}
