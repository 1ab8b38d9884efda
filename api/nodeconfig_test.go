package api_test

import (
	"context"
	"strings"
	"testing"
	"time"
)

// appliedNode provisions a local node of instance type itype and returns
// its request and node ids.
func (b *bundle) appliedNode(token, name, itype string) (string, string) {
	b.t.Helper()
	body := map[string]any{"provider": "local", "region": "local", "instance_type": itype, "name": name}
	id := b.expect(req{method: "POST", path: "/v1/provision", token: token, body: body}, 201).str("id")
	b.expect(req{method: "POST", path: "/v1/provision/" + id + "/plan", token: token}, 202)
	if r := b.waitStatus(token, id); r.str("status") != "planned" {
		b.t.Fatalf("plan: %s", r.Raw)
	}
	b.expect(req{method: "POST", path: "/v1/provision/" + id + "/apply", token: token}, 202)
	r := b.waitStatus(token, id)
	if r.str("status") != "applied" {
		b.t.Fatalf("apply: %s", r.Raw)
	}
	return id, r.str("node_id")
}

// TestResize: a resize changes the desired type and queues a plan that
// shows an in-place update; the node's capacity changes with the apply
// (or with apply: true, by itself); a type too small for the node's
// instances, an unknown type, the same type are refused and change nothing.
func TestResize(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{provisioning: true})
	a := b.bootstrap("ops@example.com")
	tok := a.access
	id, nodeID := b.appliedNode(tok, "mc-1", "local-small")

	run := b.expect(req{method: "POST", path: "/v1/nodes/" + nodeID + "/resize", token: tok, body: map[string]any{"instance_type": "local-medium"}}, 202)
	if run.str("kind") != "plan" || run.str("provision_id") != id {
		t.Fatalf("resize answered %s", run.Raw)
	}
	plan := b.waitRun(tok, run.str("id"), 90*time.Second)
	changes := plan.Body["changes"].(map[string]any)
	rc := changes["resources"].([]any)[0].(map[string]any)
	if plan.str("status") != "succeeded" || changes["change"] != float64(1) || changes["add"] != float64(0) || rc["action"] != "update" {
		t.Fatalf("resize plan: %s", plan.Raw)
	}
	if n := b.expect(req{method: "GET", path: "/v1/nodes/" + nodeID, token: tok}, 200); n.Body["vcpu"] != float64(1) || n.str("instance_type") != "local-small" {
		t.Errorf("the node changed before the apply: %s", n.Raw)
	}
	b.expect(req{method: "POST", path: "/v1/provision/" + id + "/apply", token: tok}, 202)
	if r := b.waitStatus(tok, id); r.str("status") != "applied" || r.str("node_id") != nodeID {
		t.Fatalf("apply of the resize: %s", r.Raw)
	}
	if n := b.expect(req{method: "GET", path: "/v1/nodes/" + nodeID, token: tok}, 200); n.Body["vcpu"] != float64(2) || n.Body["memory_mb"] != float64(4096) || n.str("instance_type") != "local-medium" {
		t.Errorf("node after the resize: %s", n.Raw)
	}
	if got := b.count("SELECT count(*) FROM nodes"); got != 1 {
		t.Errorf("%d nodes: a resize must keep the node", got)
	}

	// apply: true applies by itself once the plan succeeds.
	b.expect(req{method: "POST", path: "/v1/nodes/" + nodeID + "/resize", token: tok, body: map[string]any{"instance_type": "local-large", "apply": true}}, 202)
	deadline := time.Now().Add(90 * time.Second)
	for b.expect(req{method: "GET", path: "/v1/nodes/" + nodeID, token: tok}, 200).Body["vcpu"] != float64(4) {
		if time.Now().After(deadline) {
			t.Fatalf("resize with apply: true never applied: %s", b.expect(req{method: "GET", path: "/v1/provision/" + id, token: tok}, 200).Raw)
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.waitStatus(tok, id)

	// An instance reserving 3 cores: local-small (1 core) cannot hold it.
	b.expect(req{method: "POST", path: "/v1/instances", token: tok, body: map[string]any{"node_id": nodeID, "name": "big", "cpu": 3, "memory_gb": 1, "disk_gb": 1}}, 201)
	before := b.snapshot()
	tests := []struct {
		name   string
		body   map[string]any
		status int
		want   string
	}{
		{"too small for the instances", map[string]any{"instance_type": "local-small"}, 409, "cpu: the instances reserve 3000m, local-small offers 900m"},
		{"unknown type", map[string]any{"instance_type": "cx53"}, 400, "instance_type"},
		{"same type", map[string]any{"instance_type": "local-large"}, 409, "already local-large"},
		{"missing type", map[string]any{}, 400, "instance_type"},
		{"unknown field", map[string]any{"instance_type": "local-medium", "size": 2}, 400, "size"},
	}
	for _, tc := range tests {
		r := b.expect(req{method: "POST", path: "/v1/nodes/" + nodeID + "/resize", token: tok, body: tc.body}, tc.status)
		if !strings.Contains(r.errMsg(), tc.want) {
			t.Errorf("%s: %q, want %q", tc.name, r.errMsg(), tc.want)
		}
	}
	b.unchanged(before)

	other := b.register("other@example.com")
	b.expect(req{method: "POST", path: "/v1/nodes/" + nodeID + "/resize", token: other.access, body: map[string]any{"instance_type": "local-medium"}}, 404)
	reader := b.apiToken(a, "nodes:read")
	b.expect(req{method: "POST", path: "/v1/nodes/" + nodeID + "/resize", token: reader, body: map[string]any{"instance_type": "local-medium"}}, 403)
}

// TestFirewallRules: rules are the node's desired configuration: adding
// or removing one queues a plan that shows the change, and the apply
// records it; bad rules are 400 naming the field and change nothing.
func TestFirewallRules(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{provisioning: true})
	a := b.bootstrap("ops@example.com")
	tok := a.access
	id, nodeID := b.appliedNode(tok, "mc-1", "local-small")
	path := "/v1/nodes/" + nodeID + "/firewall/rules"

	rules := b.expect(req{method: "GET", path: path, token: tok}, 200).list()
	if len(rules) != 2 || rules[0]["protocol"] != "tcp" || rules[0]["port"] != "22" || rules[1]["protocol"] != "icmp" || rules[1]["port"] != "" {
		t.Fatalf("default rules: %v", rules)
	}

	added := b.expect(req{method: "POST", path: path, token: tok, body: map[string]any{
		"direction": "in", "protocol": "tcp", "port": "25565", "source_ips": []string{"0.0.0.0/0", "::/0"}, "description": "minecraft"}}, 202)
	rule := added.Body["rule"].(map[string]any)
	runID := added.Body["run"].(map[string]any)["id"].(string)
	if rule["port"] != "25565" || rule["description"] != "minecraft" {
		t.Fatalf("added %s", added.Raw)
	}
	// One run at a time: a second change while the plan is queued or running is refused and changes nothing.
	if r := b.do(req{method: "POST", path: path, token: tok, body: map[string]any{"protocol": "udp", "port": "27015-27030"}}); r.Status != 409 {
		t.Errorf("a change during a run: %d %s", r.Status, r.Raw)
	}
	plan := b.waitRun(tok, runID, 90*time.Second)
	if c := plan.Body["changes"].(map[string]any); plan.str("status") != "succeeded" || c["change"] != float64(1) {
		t.Fatalf("plan of the rule: %s", plan.Raw)
	}
	review := b.expect(req{method: "GET", path: "/v1/runs/" + runID + "/plan", token: tok, timeout: 60 * time.Second}, 200)
	if !strings.Contains(string(review.Raw), `"25565"`) {
		t.Errorf("the plan does not show the new rule: %.1500s", review.Raw)
	}
	b.expect(req{method: "POST", path: "/v1/provision/" + id + "/apply", token: tok}, 202)
	if r := b.waitStatus(tok, id); r.str("status") != "applied" {
		t.Fatalf("apply of the rule: %s", r.Raw)
	}
	if l := b.expect(req{method: "GET", path: path, token: tok}, 200).list(); len(l) != 3 {
		t.Errorf("rules after adding one: %v", l)
	}
	b.expect(req{method: "POST", path: path, token: tok, body: map[string]any{"protocol": "tcp", "port": "25565"}}, 409)

	before := b.snapshot()
	bad := []struct {
		body  map[string]any
		field string
	}{
		{map[string]any{"protocol": "sctp", "port": "1"}, "protocol"},
		{map[string]any{"protocol": "tcp"}, "port"},
		{map[string]any{"protocol": "tcp", "port": "0"}, "port"},
		{map[string]any{"protocol": "udp", "port": "70000"}, "port"},
		{map[string]any{"protocol": "udp", "port": "30-20"}, "port"},
		{map[string]any{"protocol": "tcp", "port": "http"}, "port"},
		{map[string]any{"protocol": "icmp", "port": "8"}, "port"},
		{map[string]any{"protocol": "tcp", "port": "80", "source_ips": []string{"10.0.0.300/8"}}, "source_ips[0]"},
		{map[string]any{"protocol": "tcp", "port": "80", "source_ips": []string{"::/0", "10.1.2.3/8"}}, "source_ips[1]"},
		{map[string]any{"protocol": "tcp", "port": "80", "direction": "out"}, "direction"},
		{map[string]any{"protocol": "tcp", "port": "80", "description": "bad\x00"}, "description"},
	}
	for _, tc := range bad {
		r := b.expect(req{method: "POST", path: path, token: tok, body: tc.body}, 400)
		if !strings.HasPrefix(r.errMsg(), tc.field+":") {
			t.Errorf("%v: %q, want it to name %s", tc.body, r.errMsg(), tc.field)
		}
	}
	b.unchanged(before)

	// Remove by the rule as added, then by id.
	removed := b.expect(req{method: "DELETE", path: path, token: tok, body: map[string]any{"protocol": "tcp", "port": "25565", "source_ips": []string{"::/0", "0.0.0.0/0"}}}, 202)
	if removed.Body["rule"].(map[string]any)["id"] != rule["id"] {
		t.Errorf("removed %s", removed.Raw)
	}
	b.waitRun(tok, removed.Body["run"].(map[string]any)["id"].(string), 90*time.Second)
	b.waitStatus(tok, id)
	ping := rules[1]["id"].(string)
	byID := b.expect(req{method: "DELETE", path: path + "/" + ping, token: tok}, 202)
	b.waitRun(tok, byID.Body["run"].(map[string]any)["id"].(string), 90*time.Second)
	b.waitStatus(tok, id)
	if l := b.expect(req{method: "GET", path: path, token: tok}, 200).list(); len(l) != 1 || l[0]["port"] != "22" {
		t.Errorf("rules after removing two: %v", l)
	}
	b.expect(req{method: "DELETE", path: path + "/" + ping, token: tok}, 404)

	other := b.register("other@example.com")
	b.expect(req{method: "GET", path: path, token: other.access}, 404)
	b.expect(req{method: "POST", path: path, token: other.access, body: map[string]any{"protocol": "tcp", "port": "80"}}, 404)
	b.expect(req{method: "DELETE", path: path + "/" + ping, token: other.access}, 404)
	reader := b.apiToken(a, "nodes:read")
	b.expect(req{method: "GET", path: path, token: reader}, 200)
	b.expect(req{method: "POST", path: path, token: reader, body: map[string]any{"protocol": "tcp", "port": "80"}}, 403)
}

// TestResizeDownPending: between a downsize's request and its apply, the
// node takes only what fits the smaller size (placement counts the smaller
// of both sizes); the apply checks the fit again before Terraform runs
// (refused with 409 at POST .../apply, or the apply run refused when it
// followed its plan by itself), so the node's instances always fit its
// size.
func TestResizeDownPending(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{provisioning: true})
	a := b.bootstrap("ops@example.com")
	tok := a.access
	id, nodeID := b.appliedNode(tok, "mc-1", "local-medium")
	place := func(name string, cpu, memGB float64, status int) response {
		return b.expect(req{method: "POST", path: "/v1/instances", token: tok, body: map[string]any{"node_id": nodeID, "name": name, "cpu": cpu, "memory_gb": memGB, "disk_gb": 1}}, status)
	}
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := b.pool.Exec(context.Background(), sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	place("small", 0.5, 0.25, 201)

	// Downsize to local-small (900m, 512 MiB after the OS overhead), plan only.
	run := b.expect(req{method: "POST", path: "/v1/nodes/" + nodeID + "/resize", token: tok, body: map[string]any{"instance_type": "local-small"}}, 202)
	if plan := b.waitRun(tok, run.str("id"), 90*time.Second); plan.str("status") != "succeeded" {
		t.Fatalf("plan: %s", plan.Raw)
	}
	// 1 core fits local-medium's 1400m left, not local-small's 400m.
	if r := place("big", 1, 1, 409); !strings.Contains(r.errMsg(), "insufficient cpu") || !strings.Contains(r.errMsg(), "a resize to local-small is pending") {
		t.Errorf("placement during the pending downsize: %q", r.errMsg())
	}
	place("fits", 0.25, 0.25, 201)

	// A pending resize recorded without its size (asked for before sizes
	// were recorded): the placement goes by the current size, and the
	// apply is refused, naming the short resource.
	exec("UPDATE nodes SET desired_instance_type = NULL, desired_vcpu = NULL, desired_memory_mb = NULL, desired_disk_gb = NULL WHERE id = $1", nodeID)
	big := place("big", 1, 1, 201).str("id")
	if r := b.expect(req{method: "POST", path: "/v1/provision/" + id + "/apply", token: tok}, 409); !strings.Contains(r.errMsg(), "cpu: the instances reserve 1750m, local-small offers 900m") {
		t.Errorf("apply over the instances: %q", r.errMsg())
	}
	if n := b.expect(req{method: "GET", path: "/v1/nodes/" + nodeID, token: tok}, 200); n.Body["vcpu"] != float64(2) {
		t.Errorf("the node changed after a refused apply: %s", n.Raw)
	}
	b.expect(req{method: "DELETE", path: "/v1/instances/" + big, token: tok}, 204)
	b.expect(req{method: "POST", path: "/v1/provision/" + id + "/apply", token: tok}, 202)
	if r := b.waitStatus(tok, id); r.str("status") != "applied" {
		t.Fatalf("apply of the downsize: %s", r.Raw)
	}
	if n := b.expect(req{method: "GET", path: "/v1/nodes/" + nodeID, token: tok}, 200); n.Body["vcpu"] != float64(1) || n.str("instance_type") != "local-small" {
		t.Errorf("node after the downsize: %s", n.Raw)
	}
	if got := b.count("SELECT count(*) FROM nodes WHERE id = $1 AND desired_instance_type IS NULL AND reserved_cpu_millis <= 900 AND reserved_memory_mb <= 512", nodeID); got != 1 {
		t.Errorf("after the apply: the resize still pending, or the instances do not fit")
	}

	// Up again, then down with apply: true, and an instance placed by the
	// old size before the apply's run: the run refuses before Terraform
	// runs, and the request is planned again with the reason.
	b.expect(req{method: "POST", path: "/v1/nodes/" + nodeID + "/resize", token: tok, body: map[string]any{"instance_type": "local-medium", "apply": true}}, 202)
	deadline := time.Now().Add(90 * time.Second)
	for b.count("SELECT count(*) FROM nodes WHERE id = $1 AND vcpu = 2", nodeID) != 1 || b.count("SELECT count(*) FROM provision_runs WHERE provision_id = $1 AND status IN ('queued', 'running')", id) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("upsize never applied")
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.expect(req{method: "POST", path: "/v1/nodes/" + nodeID + "/resize", token: tok, body: map[string]any{"instance_type": "local-small", "apply": true}}, 202)
	exec("UPDATE nodes SET desired_instance_type = NULL, desired_vcpu = NULL, desired_memory_mb = NULL, desired_disk_gb = NULL WHERE id = $1", nodeID)
	place("late", 1, 1, 201)
	for b.count("SELECT count(*) FROM provision_runs WHERE provision_id = $1 AND kind = 'apply' AND status IN ('succeeded', 'failed')", id) < 4 {
		if time.Now().After(deadline) {
			t.Fatalf("the apply after the downsize's plan never ended")
		}
		time.Sleep(100 * time.Millisecond)
	}
	r := b.waitStatus(tok, id)
	if r.str("status") != "planned" || !strings.Contains(r.str("error"), "apply refused before Terraform ran") || !strings.Contains(r.str("error"), "cpu: the instances reserve") {
		t.Errorf("request after the refused apply: %s", r.Raw)
	}
	if got := b.count("SELECT count(*) FROM provision_runs WHERE provision_id = $1 AND kind = 'apply' AND status = 'failed' AND error LIKE 'apply refused before Terraform ran%'", id); got != 1 {
		t.Errorf("%d refused apply runs, want 1", got)
	}
	if n := b.expect(req{method: "GET", path: "/v1/nodes/" + nodeID, token: tok}, 200); n.Body["vcpu"] != float64(2) {
		t.Errorf("the node was resized over its instances: %s", n.Raw)
	}
	// The refused type stays pending: nothing more lands by the old size.
	if r := place("later", 1, 0.25, 409); !strings.Contains(r.errMsg(), "a resize to local-small is pending") {
		t.Errorf("placement after the refused apply: %q", r.errMsg())
	}
}
