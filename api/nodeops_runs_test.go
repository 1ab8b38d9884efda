package api_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shardform/shardform/planner"
	"github.com/shardform/shardform/providers"
)

// appliedRequest records a provision request as applied with its node
// (as an apply leaves them, without running Terraform) and returns their
// ids.
func (b *bundle) appliedRequest(org, provider, region, itype, name string) (string, string) {
	b.t.Helper()
	ctx := context.Background()
	var provID string
	if err := b.pool.QueryRow(ctx, `INSERT INTO provision_requests (organization_id, provider, region, instance_type, name, status)
		VALUES ($1, $2, $3, $4, $5, 'applied') RETURNING id`, org, provider, region, itype, name).Scan(&provID); err != nil {
		b.t.Fatal(err)
	}
	node := b.insertNode(org, name, provider, region, "", provID)
	if _, err := b.pool.Exec(ctx, "UPDATE provision_requests SET node_id = $1 WHERE id = $2", node, provID); err != nil {
		b.t.Fatal(err)
	}
	return provID, node
}

// TestPowerAndRunsKeptApart: a power action and a Terraform run on one
// node never overlap: a power request while a run of the node's request is
// queued is 409 naming the run; a resize, a firewall change or a plan
// while a power action is queued is 409 naming the action. An action
// whose worker was lost no longer blocks the runs. (No workers: jobs stay
// queued.)
func TestPowerAndRunsKeptApart(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{provisioning: true, externalWorkers: true, nodeOps: true, nodeOpsNoWorker: true})
	a := b.bootstrap("ops@example.com")
	tok := a.access

	t.Run("a run in progress refuses power actions", func(t *testing.T) {
		b := b.on(t)
		_, node := b.appliedRequest(a.orgID, "local", "local", "local-small", "mc-run")
		run := b.expect(req{method: "POST", path: "/v1/nodes/" + node + "/resize", token: tok, body: map[string]any{"instance_type": "local-medium"}}, 202)
		for _, kind := range []string{"start", "stop", "reboot", "stop?force=true"} {
			r := b.power(tok, node, kind, 409)
			if !strings.Contains(r.errMsg(), run.str("id")) || !strings.Contains(r.errMsg(), "plan run in progress") {
				t.Errorf("%s while a run is queued: %s", kind, r.Raw)
			}
		}
		if n := b.count("SELECT count(*) FROM node_actions WHERE node_id = $1", node); n != 0 {
			t.Errorf("%d actions recorded while a run was queued", n)
		}
	})

	t.Run("a power action in progress refuses runs", func(t *testing.T) {
		b := b.on(t)
		provID, node := b.appliedRequest(a.orgID, "local", "local", "local-small", "mc-power")
		action := b.power(tok, node, "stop", 202)
		calls := []struct {
			name string
			r    req
		}{
			{"resize", req{method: "POST", path: "/v1/nodes/" + node + "/resize", token: tok, body: map[string]any{"instance_type": "local-medium"}}},
			{"firewall add", req{method: "POST", path: "/v1/nodes/" + node + "/firewall/rules", token: tok,
				body: map[string]any{"protocol": "udp", "port": "27015"}}},
			{"plan", req{method: "POST", path: "/v1/provision/" + provID + "/plan", token: tok}},
		}
		for _, c := range calls {
			r := b.expect(c.r, 409)
			if !strings.Contains(r.errMsg(), action.str("id")) || !strings.Contains(r.errMsg(), "stop action in progress") {
				t.Errorf("%s while a power action is queued: %s", c.name, r.Raw)
			}
		}
		if n := b.count("SELECT count(*) FROM provision_runs WHERE provision_id = $1", provID); n != 0 {
			t.Errorf("%d runs queued while a power action was", n)
		}

		// The action's job ended without an outcome (its worker died on
		// the last attempt): the run is no longer blocked, and the action
		// is failed ("worker lost").
		if _, err := b.pool.Exec(context.Background(), "UPDATE river_job SET state = 'discarded', finalized_at = now() WHERE id = (SELECT job_id FROM node_actions WHERE id = $1)", action.str("id")); err != nil {
			t.Fatal(err)
		}
		b.expect(calls[0].r, 202)
		acts := b.expect(req{method: "GET", path: "/v1/nodes/" + node + "/actions", token: tok}, 200).list()
		if len(acts) != 1 || acts[0]["status"] != "failed" || !strings.HasPrefix(acts[0]["error"].(string), "worker lost") {
			t.Errorf("actions after the lost worker: %v", acts)
		}
	})
}

// TestApplyRecordsPowerState: an apply of an existing node records the
// power state its cloud (here the local driver's machine) reports after
// it: a node recorded stopped whose machine the apply left running (as
// the aws provider starts a stopped instance to change its type) reads
// running; one whose machine is still off stays stopped. Its capacity
// changes with the apply either way.
func TestApplyRecordsPowerState(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{provisioning: true, nodeOps: true})
	a := b.bootstrap("ops@example.com")
	tok := a.access
	id, node := b.appliedNode(tok, "mc-1", "local-small")
	ctx := context.Background()
	resize := func(t *testing.T, itype string, vcpu float64) {
		t.Helper()
		b.expect(req{method: "POST", path: "/v1/nodes/" + node + "/resize", token: tok, body: map[string]any{"instance_type": itype, "apply": true}}, 202)
		deadline := time.Now().Add(90 * time.Second)
		for b.expect(req{method: "GET", path: "/v1/nodes/" + node, token: tok}, 200).Body["vcpu"] != vcpu {
			if time.Now().After(deadline) {
				t.Fatalf("resize to %s never applied: %s", itype, b.expect(req{method: "GET", path: "/v1/provision/" + id, token: tok}, 200).Raw)
			}
			time.Sleep(100 * time.Millisecond)
		}
		b.waitStatus(tok, id)
	}
	set := func(t *testing.T, recorded, machine string) {
		t.Helper()
		if _, err := b.pool.Exec(ctx, "UPDATE nodes SET power_state = $1 WHERE id = $2", recorded, node); err != nil {
			t.Fatal(err)
		}
		if _, err := b.pool.Exec(ctx, `INSERT INTO local_machines (node_id, power_state) VALUES ($1, $2)
			ON CONFLICT (node_id) DO UPDATE SET power_state = excluded.power_state`, node, machine); err != nil {
			t.Fatal(err)
		}
	}

	// Recorded stopped; the machine runs (the cloud started it).
	set(t, "stopped", "running")
	resize(t, "local-medium", 2)
	if status, power := b.nodeStatus(tok, node); power != "running" || status == "stopped" {
		t.Errorf("after an apply that left the machine running the node reads %s, power %s", status, power)
	}

	// Recorded stopped; the machine is off: it stays stopped.
	set(t, "stopped", "stopped")
	resize(t, "local-large", 4)
	if status, power := b.nodeStatus(tok, node); power != "stopped" || status != "stopped" {
		t.Errorf("after an apply that left the machine off the node reads %s, power %s", status, power)
	}
}

// TestResizeCatalogAndDisk: a resize to a type the node's region does not
// offer is 400 naming instance_type and listing the region's types
// (Hetzner's cx types are sold in its EU locations only, and the snapshot
// prices none in ash); a Hetzner downsize to a smaller disk is 409 naming
// disk (Hetzner cannot shrink a disk); a larger disk is queued. A create
// in a region that does not sell the type is 400 too. (No workers.)
func TestResizeCatalogAndDisk(t *testing.T) {
	t.Parallel()
	catalog, err := planner.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	b := setup(t, setupOpts{provisioning: true, externalWorkers: true,
		drivers: []providers.Driver{providers.NewHetzner(catalog, catalog.ReadAt)}})
	a := b.bootstrap("ops@example.com")
	tok := a.access
	resize := func(node, itype string, status int) response {
		return b.expect(req{method: "POST", path: "/v1/nodes/" + node + "/resize", token: tok, body: map[string]any{"instance_type": itype}}, status)
	}

	_, ash := b.appliedRequest(a.orgID, "hetzner", "ash", "cpx21", "us-1")
	provID, fsn := b.appliedRequest(a.orgID, "hetzner", "fsn1", "cx33", "eu-1") // an 80 GB disk
	before := b.snapshot()
	r := resize(ash, "cx23", 400)
	if r.Body["field"] != "instance_type" && !strings.HasPrefix(r.errMsg(), "instance_type") {
		t.Errorf("cx23 in ash: %s", r.Raw)
	}
	if !strings.Contains(r.errMsg(), "in ash: ") || !strings.Contains(r.errMsg(), "cpx22") || strings.Contains(r.errMsg(), " cx23") {
		t.Errorf("cx23 in ash does not list ash's types: %s", r.Raw)
	}

	r = resize(fsn, "cx23", 409) // 40 GB
	if !strings.HasPrefix(r.errMsg(), "disk:") || !strings.Contains(r.errMsg(), "80 GB") || !strings.Contains(r.errMsg(), "40 GB") {
		t.Errorf("downsize to a smaller disk: %s", r.Raw)
	}
	r = resize(fsn, "cx53x", 400)
	if !strings.Contains(r.errMsg(), "instance_type") || !strings.Contains(r.errMsg(), "cx23") {
		t.Errorf("unknown type in fsn1: %s", r.Raw)
	}
	b.unchanged(before)
	resize(fsn, "cx43", 202) // 160 GB: in place
	if got := b.count("SELECT count(*) FROM provision_requests WHERE id = $1 AND instance_type = 'cx43'", provID); got != 1 {
		t.Errorf("the resize to cx43 did not change the request")
	}

	r = b.expect(req{method: "POST", path: "/v1/provision", token: tok, body: map[string]any{
		"provider": "hetzner", "region": "ash", "instance_type": "cx23", "name": "us-2"}}, 400)
	if !strings.Contains(r.errMsg(), "instance_type") || !strings.Contains(r.errMsg(), "in ash") {
		t.Errorf("create of cx23 in ash: %s", r.Raw)
	}
}

// TestFirewallRuleLimit: a node's firewall holds at most 50 rules: the
// 50th is added, the 51st is 400 naming the field and adds nothing.
func TestFirewallRuleLimit(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{provisioning: true})
	a := b.bootstrap("ops@example.com")
	tok := a.access
	id, node := b.appliedNode(tok, "mc-1", "local-small")
	path := "/v1/nodes/" + node + "/firewall/rules"
	have := b.count("SELECT count(*) FROM firewall_rules WHERE provision_id = $1", id)
	for i := have; i < 49; i++ {
		if _, err := b.pool.Exec(context.Background(), `INSERT INTO firewall_rules (organization_id, provision_id, protocol, port_low, port_high, source_ips)
			VALUES ($1, $2, 'udp', $3, $3, '{0.0.0.0/0}')`, a.orgID, id, 30000+i); err != nil {
			t.Fatal(err)
		}
	}
	b.expect(req{method: "POST", path: path, token: tok, body: map[string]any{"protocol": "tcp", "port": "25565"}}, 202)
	if r := b.waitStatus(tok, id); r.str("status") != "planned" {
		t.Fatalf("plan of the 50th rule: %s", r.Raw)
	}
	if n := len(b.expect(req{method: "GET", path: path, token: tok}, 200).list()); n != 50 {
		t.Fatalf("%d rules, want 50", n)
	}
	before := b.snapshot()
	r := b.expect(req{method: "POST", path: path, token: tok, body: map[string]any{"protocol": "tcp", "port": "25566"}}, 400)
	if !strings.HasPrefix(r.errMsg(), "rules") || !strings.Contains(r.errMsg(), fmt.Sprint(50)) {
		t.Errorf("51st rule: %s", r.Raw)
	}
	b.unchanged(before)
}
