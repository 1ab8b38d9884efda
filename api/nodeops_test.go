package api_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shardform/shardform/dns"
	"github.com/shardform/shardform/internal/fake/awsfake"
	"github.com/shardform/shardform/internal/fake/hcloudfake"
	"github.com/shardform/shardform/nodeops"
	"github.com/shardform/shardform/planner"
	"github.com/shardform/shardform/providers"
	"github.com/shardform/shardform/seal"
	"github.com/shardform/shardform/store"
	"github.com/shardform/shardform/worker"
)

// startNodeOps builds the power actions service (nodes' new addresses
// updating their auto-DNS records through dnsSvc, when set) and, unless
// o.nodeOpsNoWorker, a River worker for its nodes queue.
func startNodeOps(t *testing.T, pool *pgxpool.Pool, key []byte, o setupOpts, dnsSvc *dns.Service) *nodeops.Service {
	t.Helper()
	sealer, err := seal.New(key)
	if err != nil {
		t.Fatal(err)
	}
	st := store.NewStore(pool)
	svc := nodeops.New(st, sealer, nodeops.Config{Clouds: o.clouds, StopTimeout: o.stopTimeout,
		WorkerLostAfter: o.workerLostAfter, AddressRetry: o.addressRetry})
	if dnsSvc != nil {
		svc.UseDNS(dnsSvc)
	}
	work := !o.nodeOpsNoWorker
	client, err := worker.NewClient(pool, st, worker.Options{Work: work, NodeOps: svc, FetchPollInterval: 20 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	svc.UseQueue(client)
	if !work {
		return svc
	}
	ctx := context.Background()
	if err := client.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stopCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		_ = client.Stop(stopCtx)
	})
	return svc
}

// insertNode adds a node to org as a registered one would be (a cloud's
// server id), without a provision request; provisionID, when set, makes it
// that request's node.
func (b *bundle) insertNode(org, name, provider, region, serverID, provisionID string) string {
	b.t.Helper()
	var prov any
	if provisionID != "" {
		prov = provisionID
	}
	var id string
	err := b.pool.QueryRow(context.Background(), `INSERT INTO nodes (organization_id, provision_id, name, provider, region, instance_type, vcpu, memory_mb, disk_gb, server_id)
		VALUES ($1, $2, $3, $4, $5, 'test-type', 4, 8192, 80, $6) RETURNING id`, org, prov, name, provider, region, serverID).Scan(&id)
	if err != nil {
		b.t.Fatal(err)
	}
	return id
}

// power asks for a power action and returns the queued action.
func (b *bundle) power(token, nodeID, kind string, status int) response {
	b.t.Helper()
	return b.expect(req{method: "POST", path: "/v1/nodes/" + nodeID + "/power/" + kind, token: token}, status)
}

// waitAction polls a node's actions until actionID has finished.
func (b *bundle) waitAction(token, nodeID, actionID string) map[string]any {
	b.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		for _, a := range b.expect(req{method: "GET", path: "/v1/nodes/" + nodeID + "/actions?limit=100", token: token}, 200).list() {
			if a["id"] == actionID && a["status"] != "queued" && a["status"] != "running" {
				return a
			}
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("action %s of node %s has not finished after a minute", actionID, nodeID)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// powerOK runs one action to success and returns it.
func (b *bundle) powerOK(token, nodeID, kind string) map[string]any {
	b.t.Helper()
	queued := b.power(token, nodeID, kind, 202)
	if queued.str("status") != "queued" || queued.str("node_id") != nodeID || queued.str("kind") != strings.SplitN(kind, "?", 2)[0] {
		b.t.Fatalf("%s answered %s", kind, queued.Raw)
	}
	a := b.waitAction(token, nodeID, queued.str("id"))
	if a["status"] != "succeeded" || a["error"] != "" || a["started_at"] == nil || a["finished_at"] == nil {
		b.t.Fatalf("%s of node %s: %v", kind, nodeID, a)
	}
	return a
}

// nodeStatus is a node's status and recorded power state.
func (b *bundle) nodeStatus(token, nodeID string) (string, string) {
	b.t.Helper()
	n := b.expect(req{method: "GET", path: "/v1/nodes/" + nodeID, token: token}, 200)
	return n.str("status"), n.str("power_state")
}

// TestPowerLocalEndToEnd provisions a local node through the API and
// operates it: stop (its status reads stopped; suggest-fit and placement
// skip it), start (back to its status before), reboot, a forced stop, a
// power state changed outside shardform, and the action list.
func TestPowerLocalEndToEnd(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{provisioning: true, nodeOps: true, rateLimit: 100000})
	a := b.bootstrap("ops@example.com")
	tok := a.access
	id := b.expect(req{method: "POST", path: "/v1/provision", token: tok, body: map[string]any{
		"provider": "local", "region": "local", "instance_type": "local-large", "name": "game-1"}}, 201).str("id")
	b.expect(req{method: "POST", path: "/v1/provision/" + id + "/plan", token: tok}, 202)
	if r := b.waitStatus(tok, id); r.str("status") != "planned" {
		t.Fatalf("plan: %s", r.Raw)
	}
	b.expect(req{method: "POST", path: "/v1/provision/" + id + "/apply", token: tok}, 202)
	applied := b.waitStatus(tok, id)
	if applied.str("status") != "applied" {
		t.Fatalf("apply: %s", applied.Raw)
	}
	node := applied.str("node_id")

	st := b.expect(req{method: "GET", path: "/v1/nodes/" + node + "/power/status", token: tok}, 200)
	if st.str("power_state") != "running" || st.str("recorded_power_state") != "running" || st.Body["action"] != nil {
		t.Fatalf("power status of a new node: %s", st.Raw)
	}
	if s, p := b.nodeStatus(tok, node); s != "ready" || p != "running" {
		t.Fatalf("new node: status %s, power %s", s, p)
	}

	// Stop: the node reads stopped, is listed as such, and takes nothing.
	stop := b.powerOK(tok, node, "stop")
	if stop["force"] != false {
		t.Errorf("a plain stop is forced: %v", stop)
	}
	if s, p := b.nodeStatus(tok, node); s != "stopped" || p != "stopped" {
		t.Fatalf("after the stop: status %s, power %s", s, p)
	}
	if l := b.expect(req{method: "GET", path: "/v1/nodes?status=stopped", token: tok}, 200).list(); len(l) != 1 || l[0]["id"] != node {
		t.Errorf("nodes?status=stopped: %v", l)
	}
	if l := b.expect(req{method: "GET", path: "/v1/nodes?status=ready", token: tok}, 200).list(); len(l) != 0 {
		t.Errorf("nodes?status=ready lists a stopped node: %v", l)
	}
	fit := b.expect(req{method: "POST", path: "/v1/planner/suggest-fit", token: tok, body: map[string]any{"cpu": 0.1, "memory_gb": 0.1, "disk_gb": 1}}, 200)
	if fit.Body["fits_total"] != float64(0) || fit.Body["rejected_by_reason"].(map[string]any)["stopped"] != float64(1) {
		t.Errorf("suggest-fit with the only node stopped: %s", fit.Raw)
	}
	place := map[string]any{"node_id": node, "name": "gs-1", "cpu": 0.1, "memory_gb": 0.1, "disk_gb": 1}
	if r := b.expect(req{method: "POST", path: "/v1/instances", token: tok, body: place}, 409); !strings.Contains(r.errMsg(), "is stopped") {
		t.Errorf("placement on a stopped node: %s", r.Raw)
	}
	if r := b.power(tok, node, "reboot", 409); !strings.Contains(r.errMsg(), "is stopped") {
		t.Errorf("reboot of a stopped node: %s", r.Raw)
	}
	// Cordoning a stopped node keeps it stopped; started, it is cordoned.
	b.expect(req{method: "PUT", path: "/v1/nodes/" + node, token: tok, body: map[string]any{"status": "cordoned"}}, 200)
	if s, _ := b.nodeStatus(tok, node); s != "stopped" {
		t.Errorf("a stopped node cordoned reads %s", s)
	}

	b.powerOK(tok, node, "start")
	if s, p := b.nodeStatus(tok, node); s != "cordoned" || p != "running" {
		t.Fatalf("after the start: status %s, power %s", s, p)
	}
	b.expect(req{method: "PUT", path: "/v1/nodes/" + node, token: tok, body: map[string]any{"status": "ready"}}, 200)
	b.expect(req{method: "POST", path: "/v1/instances", token: tok, body: place}, 201)

	b.powerOK(tok, node, "reboot")
	if n := b.count("SELECT boots FROM local_machines WHERE node_id = $1", node); n != 2 {
		t.Errorf("the local machine booted %d times, want 2 (a start and a reboot)", n)
	}
	forced := b.powerOK(tok, node, "stop?force=true")
	if forced["force"] != true {
		t.Errorf("a forced stop: %v", forced)
	}

	// Someone powers the machine on outside shardform: the status read
	// says so and corrects the record.
	if _, err := b.pool.Exec(context.Background(), "UPDATE local_machines SET power_state = 'running' WHERE node_id = $1", node); err != nil {
		t.Fatal(err)
	}
	st = b.expect(req{method: "GET", path: "/v1/nodes/" + node + "/power/status", token: tok}, 200)
	if st.str("power_state") != "running" || st.str("recorded_power_state") != "running" || st.Body["action"].(map[string]any)["id"] != forced["id"] {
		t.Fatalf("power status after an outside start: %s", st.Raw)
	}
	if s, _ := b.nodeStatus(tok, node); s != "ready" {
		t.Errorf("node after an outside start reads %s", s)
	}

	acts := b.expect(req{method: "GET", path: "/v1/nodes/" + node + "/actions?limit=2", token: tok}, 200)
	l := acts.list()
	if meta := acts.Body["meta"].(map[string]any); meta["total"] != float64(4) || len(l) != 2 || l[0]["id"] != forced["id"] || l[1]["kind"] != "reboot" {
		t.Errorf("actions, newest first: %s", acts.Raw)
	}
	if n := b.count("SELECT count(*) FROM audit_logs WHERE action LIKE '%power%'"); n != 4 {
		t.Errorf("%d audit entries of power actions, want 4", n)
	}

	// Destroying the request takes the node, its instance (force: the node
	// still holds one) and its actions with it.
	b.expect(req{method: "DELETE", path: "/v1/provision/" + id, token: tok}, 409)
	b.expect(req{method: "DELETE", path: "/v1/provision/" + id + "?force=true", token: tok}, 202)
	if r := b.waitStatus(tok, id); r.str("status") != "destroyed" {
		t.Fatalf("destroy: %s", r.Raw)
	}
	if n := b.count("SELECT count(*) FROM node_actions"); n != 0 {
		t.Errorf("%d actions outlive their node", n)
	}
}

// TestPowerBusyNode: a second action on a node with one queued is 409
// naming it; nothing new is recorded or queued.
func TestPowerBusyNode(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{nodeOps: true, nodeOpsNoWorker: true, workerLostAfter: time.Minute})
	a := b.bootstrap("ops@example.com")
	node := b.insertNode(a.orgID, "game-1", "local", "local", "", "")
	first := b.power(a.access, node, "stop", 202)
	for _, kind := range []string{"start", "stop", "reboot", "stop?force=true"} {
		r := b.power(a.access, node, kind, 409)
		if !strings.Contains(r.errMsg(), first.str("id")) || !strings.Contains(r.errMsg(), "stop action in progress") {
			t.Errorf("%s on a busy node: %s", kind, r.Raw)
		}
	}
	if n := b.count("SELECT count(*) FROM node_actions"); n != 1 {
		t.Errorf("%d actions recorded, want 1", n)
	}
	if n := b.count("SELECT count(*) FROM river_job WHERE kind = 'node_action'"); n != 1 {
		t.Errorf("%d jobs queued, want 1", n)
	}
	// Another node is not busy.
	other := b.insertNode(a.orgID, "game-2", "local", "local", "", "")
	b.power(a.access, other, "reboot", 202)

	// An action whose job ended without an outcome (its worker died on
	// the last attempt, say) does not block the node for ever.
	if _, err := b.pool.Exec(context.Background(), "UPDATE river_job SET state = 'discarded', finalized_at = now() WHERE id = (SELECT job_id FROM node_actions WHERE id = $1)", first.str("id")); err != nil {
		t.Fatal(err)
	}
	start := b.power(a.access, node, "start", 202)
	acts := b.expect(req{method: "GET", path: "/v1/nodes/" + node + "/actions", token: a.access}, 200).list()
	if len(acts) != 2 || acts[1]["status"] != "failed" || !strings.Contains(acts[1]["error"].(string), "job ended without an outcome") {
		t.Errorf("actions after the orphan: %v", acts)
	}

	// A job that is running with a recent heartbeat is not lost: still 409.
	if _, err := b.pool.Exec(context.Background(), `UPDATE river_job SET state = 'running', attempt = 1, attempted_at = now() - interval '2 hours'
		WHERE id = (SELECT job_id FROM node_actions WHERE id = $1)`, start.str("id")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.pool.Exec(context.Background(), "UPDATE node_actions SET status = 'running', heartbeat_at = now() WHERE id = $1", start.str("id")); err != nil {
		t.Fatal(err)
	}
	b.power(a.access, node, "stop", 409)
	b.expect(req{method: "GET", path: "/v1/nodes/" + node + "/power/status", token: a.access}, 200)
	if n := b.count("SELECT count(*) FROM node_actions WHERE id = $1 AND status = 'running'", start.str("id")); n != 1 {
		t.Fatalf("an action whose worker beats was ended")
	}

	// Its worker stops beating (it died mid-action): the status read ends
	// the action failed ("worker lost") and cancels its job, so the node
	// takes its next action at once.
	if _, err := b.pool.Exec(context.Background(), "UPDATE node_actions SET heartbeat_at = now() - interval '2 minutes' WHERE id = $1", start.str("id")); err != nil {
		t.Fatal(err)
	}
	st := b.expect(req{method: "GET", path: "/v1/nodes/" + node + "/power/status", token: a.access}, 200)
	act, _ := st.Body["action"].(map[string]any)
	if act["id"] != start.str("id") || act["status"] != "failed" || !strings.Contains(act["error"].(string), "worker lost") {
		t.Errorf("power status after the worker was lost: %s", st.Raw)
	}
	if n := b.count(`SELECT count(*) FROM river_job WHERE state = 'cancelled' AND id = (SELECT job_id FROM node_actions WHERE id = $1)`, start.str("id")); n != 1 {
		t.Errorf("the lost action's job was not cancelled")
	}
	b.power(a.access, node, "stop", 202)
}

// TestPowerRefused: bad input, missing permissions, another
// organization's node and nodes that cannot be operated.
func TestPowerRefused(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{nodeOps: true, nodeOpsNoWorker: true,
		clouds: map[string]nodeops.Power{"hetzner": providers.HetznerPower{Endpoint: "http://127.0.0.1:1"}}})
	a := b.bootstrap("ops@example.com")
	node := b.insertNode(a.orgID, "game-1", "local", "local", "", "")
	noCred := b.insertNode(a.orgID, "hz-1", "hetzner", "fsn1", "4000001", "")
	noServer := b.insertNode(a.orgID, "hz-2", "hetzner", "fsn1", "", "")
	elsewhere := b.insertNode(a.orgID, "gcp-1", "gcp", "europe-west3", "abc", "")
	reader := b.apiToken(a, "nodes:read")
	writer := b.apiToken(a, "nodes:write")
	viewer := b.join(a, a.orgID, "viewer@example.com", "viewer")
	other := b.register("other@example.com")
	otherNode := b.insertNode(other.orgID, "theirs", "local", "local", "", "")

	tests := []struct {
		name, method, path, token string
		header                    map[string]string
		status                    int
		want                      string
	}{
		{"no credential", "POST", "/v1/nodes/" + node + "/power/stop", "", nil, 401, ""},
		{"force on a start", "POST", "/v1/nodes/" + node + "/power/start?force=true", a.access, nil, 400, "force"},
		{"force on a reboot", "POST", "/v1/nodes/" + node + "/power/reboot?force=1", a.access, nil, 400, "force"},
		{"force not a boolean", "POST", "/v1/nodes/" + node + "/power/stop?force=yes", a.access, nil, 400, "force"},
		{"malformed id", "POST", "/v1/nodes/not-a-uuid/power/stop", a.access, nil, 400, "id"},
		{"uppercase id", "GET", "/v1/nodes/" + strings.ToUpper(node) + "/power/status", a.access, nil, 400, "id"},
		{"unknown action", "POST", "/v1/nodes/" + node + "/power/hibernate", a.access, nil, 404, ""},
		{"unknown node", "POST", "/v1/nodes/0d6f4bfa-6e3c-4f55-9c39-2cdb1ee1a0f1/power/stop", a.access, nil, 404, "node not found"},
		{"bad page", "GET", "/v1/nodes/" + node + "/actions?limit=1000", a.access, nil, 400, "limit"},
		{"read token stops", "POST", "/v1/nodes/" + node + "/power/stop", reader, nil, 403, "nodes:write"},
		{"viewer reboots", "POST", "/v1/nodes/" + node + "/power/reboot", viewer.access, inOrg(a.orgID), 403, "nodes:write"},
		{"write token reads the status", "GET", "/v1/nodes/" + node + "/power/status", writer, nil, 403, "nodes:read"},
		{"write token lists actions", "GET", "/v1/nodes/" + node + "/actions", writer, nil, 403, "nodes:read"},
		{"another organization's node: stop", "POST", "/v1/nodes/" + otherNode + "/power/stop", a.access, nil, 404, "node not found"},
		{"another organization's node: status", "GET", "/v1/nodes/" + otherNode + "/power/status", a.access, nil, 404, "node not found"},
		{"another organization's node: actions", "GET", "/v1/nodes/" + otherNode + "/actions", a.access, nil, 404, "node not found"},
		{"theirs from their side, into ours", "POST", "/v1/nodes/" + node + "/power/start", other.access, nil, 404, "node not found"},
		{"not a member of the organization", "GET", "/v1/nodes/" + node + "/actions", other.access, inOrg(a.orgID), 404, ""},
		{"no credential for the cloud", "POST", "/v1/nodes/" + noCred + "/power/stop", a.access, nil, 422, "no hetzner credential"},
		{"no server id", "POST", "/v1/nodes/" + noServer + "/power/start", a.access, nil, 422, "no server id"},
		{"a provider without power actions", "POST", "/v1/nodes/" + elsewhere + "/power/reboot", a.access, nil, 422, "no power actions"},
		{"a provider without power actions: status", "GET", "/v1/nodes/" + elsewhere + "/power/status", a.access, nil, 422, "no power actions"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := b.count("SELECT count(*) FROM node_actions")
			r := b.expect(req{method: tt.method, path: tt.path, token: tt.token, header: tt.header}, tt.status)
			if !strings.Contains(r.errMsg(), tt.want) {
				t.Errorf("error %q, want it to name %q", r.errMsg(), tt.want)
			}
			if n := b.count("SELECT count(*) FROM node_actions"); n != before {
				t.Errorf("a refused request recorded an action")
			}
		})
	}
	// The reads succeed with the right permission.
	if r := b.expect(req{method: "GET", path: "/v1/nodes/" + node + "/power/status", token: reader}, 200); r.str("power_state") != "running" {
		t.Errorf("status: %s", r.Raw)
	}
	b.expect(req{method: "GET", path: "/v1/nodes/" + node + "/actions", token: viewer.access, header: inOrg(a.orgID)}, 200)
	b.expect(req{method: "POST", path: "/v1/nodes/" + node + "/power/stop", token: writer}, 202)
}

// TestPowerHetzner operates hetzner nodes with hcloud-go against the local
// fake of the Hetzner API: the provision request's credential, a graceful
// stop, a shutdown the OS ignores (powered off after the timeout), a
// forced stop, reboot, a status read that finds an outside change, and a
// refused token failing the action at once.
func TestPowerHetzner(t *testing.T) {
	t.Parallel()
	fake := hcloudfake.New(t, hcloudfake.Options{})
	b := setup(t, setupOpts{provisioning: true, nodeOps: true, rateLimit: 100000, stopTimeout: 200 * time.Millisecond,
		clouds: map[string]nodeops.Power{"hetzner": providers.HetznerPower{Endpoint: fake.URL, PollInterval: 5 * time.Millisecond}}})
	a := b.bootstrap("ops@example.com")
	tok := a.access
	// The organization's default credential is refused by Hetzner; the
	// node's provision request has the good one.
	bad := b.createCredential(tok, "hetzner old", "hetzner", map[string]string{"token": "refused-token-000000"})
	good := b.createCredential(tok, "hetzner prod", "hetzner", map[string]string{"token": hcloudfake.Token})
	if bad.Body["is_default"] != true {
		t.Fatalf("the first credential is not the default: %s", bad.Raw)
	}
	var provID string
	if err := b.pool.QueryRow(context.Background(), `INSERT INTO provision_requests (organization_id, provider, region, instance_type, name, status, credential_id)
		VALUES ($1, 'hetzner', 'fsn1', 'cx23', 'mc-1', 'applied', $2) RETURNING id`, a.orgID, good.str("id")).Scan(&provID); err != nil {
		t.Fatal(err)
	}
	server := fake.AddServer("mc-1")
	node := b.insertNode(a.orgID, "mc-1", "hetzner", "fsn1", strconv.FormatInt(server, 10), provID)
	if _, err := b.pool.Exec(context.Background(), "UPDATE nodes SET ipv4 = '198.51.100.7', ipv6 = '2001:db8::7' WHERE id = $1", node); err != nil {
		t.Fatal(err)
	}

	b.powerOK(tok, node, "stop")
	if fake.ServerStatus(server) != hcloudfake.StatusOff {
		t.Fatalf("Hetzner says %s after the stop", fake.ServerStatus(server))
	}
	if calls := fake.ActionCalls(); calls["shutdown"] != 1 || calls["poweroff"] != 0 {
		t.Errorf("a graceful stop called %v", calls)
	}
	if s, _ := b.nodeStatus(tok, node); s != "stopped" {
		t.Errorf("node after the stop reads %s", s)
	}
	st := b.expect(req{method: "GET", path: "/v1/nodes/" + node + "/power/status", token: tok}, 200)
	if st.str("power_state") != "stopped" || st.str("provider_state") != "off" || st.str("recorded_power_state") != "stopped" {
		t.Errorf("power status: %s", st.Raw)
	}

	b.powerOK(tok, node, "start")
	// A Hetzner server keeps its primary IPs through power actions: the
	// driver reads no addresses and the node's stay as they were.
	if n := b.expect(req{method: "GET", path: "/v1/nodes/" + node, token: tok}, 200); n.str("ipv4") != "198.51.100.7" || n.str("ipv6") != "2001:db8::7" {
		t.Errorf("node after a start: %s", n.Raw)
	}
	b.powerOK(tok, node, "reboot")
	if fake.ServerStatus(server) != hcloudfake.StatusRunning || fake.Reboots(server) != 1 {
		t.Fatalf("Hetzner says %s after %d reboots", fake.ServerStatus(server), fake.Reboots(server))
	}

	// The OS ignores the shutdown: after the stop timeout, a power-off.
	fake.IgnoreShutdown(server)
	b.powerOK(tok, node, "stop")
	if calls := fake.ActionCalls(); calls["shutdown"] != 2 || calls["poweroff"] != 1 || fake.ServerStatus(server) != hcloudfake.StatusOff {
		t.Errorf("a stop the OS ignored called %v; server %s", calls, fake.ServerStatus(server))
	}
	b.powerOK(tok, node, "start")
	b.powerOK(tok, node, "stop?force=true")
	if calls := fake.ActionCalls(); calls["shutdown"] != 2 || calls["poweroff"] != 2 {
		t.Errorf("a forced stop called %v", calls)
	}

	// Hetzner fails once: the job is retried and the action succeeds on
	// its second attempt.
	fake.FailNextActions(1)
	if retried := b.powerOK(tok, node, "start"); retried["attempt"] != float64(2) {
		t.Errorf("a start Hetzner failed once: %v", retried)
	}
	b.powerOK(tok, node, "stop?force=true")

	// Started from the console: the status read corrects the record.
	fake.SetServerStatus(server, hcloudfake.StatusRunning)
	if st := b.expect(req{method: "GET", path: "/v1/nodes/" + node + "/power/status", token: tok}, 200); st.str("recorded_power_state") != "running" {
		t.Errorf("status after an outside start: %s", st.Raw)
	}

	// A node without a request runs with the default credential, which
	// Hetzner refuses: the action fails at once with Hetzner's message.
	server2 := fake.AddServer("mc-2")
	node2 := b.insertNode(a.orgID, "mc-2", "hetzner", "fsn1", strconv.FormatInt(server2, 10), "")
	failed := b.waitAction(tok, node2, b.power(tok, node2, "stop", 202).str("id"))
	if failed["status"] != "failed" || !strings.Contains(failed["error"].(string), "unable to authenticate") || failed["attempt"] != float64(1) {
		t.Errorf("a stop with a refused token: %v", failed)
	}
	if fake.ServerStatus(server2) != hcloudfake.StatusRunning {
		t.Errorf("server 2 is %s", fake.ServerStatus(server2))
	}
	if st := b.expect(req{method: "GET", path: "/v1/nodes/" + node2 + "/power/status", token: tok}, 200); st.str("power_state") != "unknown" || !strings.Contains(st.str("error"), "unable to authenticate") {
		t.Errorf("status with a refused token: %s", st.Raw)
	}
	all := b.expect(req{method: "GET", path: "/v1/nodes/" + node + "/actions?limit=100", token: tok}, 200)
	noSecretIn(t, "actions", all.Raw, hcloudfake.Token)
}

// TestPowerAWS operates an aws node with the AWS SDK for Go v2 against the
// local EC2 fake (requests signed with the credential's keys): stop
// (running → stopping → stopped), start (pending → running), reboot, an
// OS that ignores the graceful stop (forced after the timeout), and an
// instance that is gone.
func TestPowerAWS(t *testing.T) {
	t.Parallel()
	fake := awsfake.New(t)
	fake.Allow(awsKeyID, awsSecret)
	b := setup(t, setupOpts{provisioning: true, nodeOps: true, rateLimit: 100000, stopTimeout: 200 * time.Millisecond,
		clouds: map[string]nodeops.Power{"aws": providers.AWSPower{Endpoint: fake.URL, PollInterval: 5 * time.Millisecond}}})
	a := b.bootstrap("ops@example.com")
	tok := a.access
	b.createCredential(tok, "aws main", "aws", map[string]string{"access_key_id": awsKeyID, "secret_access_key": awsSecret})
	inst := fake.AddInstance("eu-central-1", "t3.small")
	node := b.insertNode(a.orgID, "game-1", "aws", "eu-central-1", inst, "")
	state := func() awsfake.Instance {
		for _, in := range fake.Instances() {
			if in.ID == inst {
				return in
			}
		}
		t.Fatalf("instance %s is gone", inst)
		return awsfake.Instance{}
	}

	b.powerOK(tok, node, "stop")
	if s := state().State; s != awsfake.StateStopped {
		t.Fatalf("EC2 says %s after the stop", s)
	}
	if s, _ := b.nodeStatus(tok, node); s != "stopped" {
		t.Errorf("node after the stop reads %s", s)
	}
	st := b.expect(req{method: "GET", path: "/v1/nodes/" + node + "/power/status", token: tok}, 200)
	if st.str("power_state") != "stopped" || st.str("provider_state") != "stopped" {
		t.Errorf("power status: %s", st.Raw)
	}
	b.powerOK(tok, node, "start")
	// EC2 gave the started instance a new public address: the node has it.
	n := b.expect(req{method: "GET", path: "/v1/nodes/" + node, token: tok}, 200)
	if ip := state().PublicIP; n.str("ipv4") != ip || !strings.HasPrefix(ip, "203.0.113.") {
		t.Errorf("node address %q after the start; EC2 says %q", n.str("ipv4"), ip)
	}
	b.powerOK(tok, node, "reboot")
	if in := state(); in.State != awsfake.StateRunning || in.Reboots != 1 {
		t.Fatalf("EC2 says %s after %d reboots", in.State, in.Reboots)
	}
	calls := fake.Calls()
	if calls["StopInstances"] != 1 || calls["StartInstances"] != 1 || calls["RebootInstances"] != 1 || calls["DescribeInstances"] < 5 {
		t.Errorf("EC2 calls %v", calls)
	}

	// The OS ignores the stop: after the timeout, a forced stop.
	fake.IgnoreGracefulStop(inst)
	b.powerOK(tok, node, "stop")
	if in := state(); in.State != awsfake.StateStopped || fake.Calls()["StopInstances"] != 3 {
		t.Errorf("a stop the OS ignored: EC2 says %s after %d StopInstances", in.State, fake.Calls()["StopInstances"])
	}

	// Terminated outside shardform: a start fails at once, naming why.
	fake.SetState(inst, awsfake.StateTerminated)
	failed := b.waitAction(tok, node, b.power(tok, node, "start", 202).str("id"))
	if failed["status"] != "failed" || !strings.Contains(failed["error"].(string), "IncorrectInstanceState") || failed["attempt"] != float64(1) {
		t.Errorf("a start of a terminated instance: %v", failed)
	}
	all := b.expect(req{method: "GET", path: "/v1/nodes/" + node + "/actions?limit=100", token: tok}, 200)
	noSecretIn(t, "actions", all.Raw, awsSecret)
}

// TestPowerAWSProvisioned provisions an aws node with the real
// hashicorp/aws provider against the EC2 fake, stops it through the API
// (the SDK against the same fake), checks that Terraform's view of the
// stopped instance is a drift report, not a failure, starts it and
// destroys it.
func TestPowerAWSProvisioned(t *testing.T) {
	if os.Getenv("SHARDFORM_TF_PLUGIN_MIRROR") == "" {
		t.Skip("SHARDFORM_TF_PLUGIN_MIRROR not set: no hashicorp/aws provider to run")
	}
	t.Parallel()
	fake := awsfake.New(t)
	fake.Allow(awsKeyID, awsSecret)
	catalog, err := planner.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	driver := providers.NewAWS(catalog, catalog.ReadAt)
	driver.Endpoint = fake.URL
	b := setup(t, setupOpts{provisioning: true, drivers: []providers.Driver{driver}, nodeOps: true, rateLimit: 100000,
		clouds: map[string]nodeops.Power{"aws": providers.AWSPower{Endpoint: fake.URL, PollInterval: 5 * time.Millisecond}}})
	a := b.bootstrap("ops@example.com")
	tok := a.access
	b.createCredential(tok, "aws main", "aws", map[string]string{"access_key_id": awsKeyID, "secret_access_key": awsSecret})
	itype := "t3.micro"
	if _, ok := providers.FindInstanceType(driver, itype); !ok {
		itype = driver.InstanceTypes()[0].Name
	}
	id := b.expect(req{method: "POST", path: "/v1/provision", token: tok, body: map[string]any{
		"provider": "aws", "region": driver.Regions()[0].Name, "instance_type": itype, "name": "game-1"}}, 201).str("id")
	b.expect(req{method: "POST", path: "/v1/provision/" + id + "/plan", token: tok}, 202)
	if r := b.waitStatusFor(tok, id, 8*time.Minute); r.str("status") != "planned" {
		t.Fatalf("plan: %s", r.Raw)
	}
	b.expect(req{method: "POST", path: "/v1/provision/" + id + "/apply", token: tok}, 202)
	applied := b.waitStatusFor(tok, id, 8*time.Minute)
	if applied.str("status") != "applied" {
		t.Fatalf("apply: %s", applied.Raw)
	}
	node := applied.str("node_id")
	live := fake.Live()
	if len(live) != 1 {
		t.Fatalf("EC2 holds %+v", live)
	}
	before := b.expect(req{method: "GET", path: "/v1/nodes/" + node, token: tok}, 200)
	if before.str("ipv4") != live[0].PublicIP {
		t.Fatalf("node %s, instance %+v", before.Raw, live[0])
	}

	b.powerOK(tok, node, "stop")
	if in := fake.Instances()[0]; in.State != awsfake.StateStopped {
		t.Fatalf("EC2 says %s after the stop", in.State)
	}
	if s, _ := b.nodeStatus(tok, node); s != "stopped" {
		t.Errorf("node reads %s", s)
	}
	// Terraform reads the stopped instance: the run succeeds and reports
	// the state change as drift outside Terraform (power is not Terraform's).
	b.expect(req{method: "POST", path: "/v1/provision/" + id + "/refresh", token: tok}, 202)
	run := b.waitRun(tok, b.latestRun(tok, id), 8*time.Minute)
	if run.str("status") != "succeeded" {
		t.Fatalf("refresh of a stopped instance: %s", run.Raw)
	}
	if drift, _ := run.Body["drift"].([]any); run.Body["drifted"] != true || len(drift) != 1 ||
		!slices.Contains(drift[0].(map[string]any)["attributes"].([]any), any("instance_state")) {
		t.Errorf("refresh of a stopped instance: drifted %v, drift %v", run.Body["drifted"], run.Body["drift"])
	}

	b.powerOK(tok, node, "start")
	if n := b.expect(req{method: "GET", path: "/v1/nodes/" + node, token: tok}, 200); n.str("status") != "ready" || n.str("ipv4") != fake.Instances()[0].PublicIP || n.str("ipv4") == before.str("ipv4") {
		t.Errorf("node after the start: %s; EC2 says %s", n.Raw, fake.Instances()[0].PublicIP)
	}
	b.expect(req{method: "DELETE", path: "/v1/provision/" + id, token: tok}, 202)
	if r := b.waitStatusFor(tok, id, 8*time.Minute); r.str("status") != "destroyed" {
		t.Fatalf("destroy: %s", r.Raw)
	}
	if len(fake.Live()) != 0 || len(fake.Unsupported()) != 0 {
		t.Errorf("EC2 holds %+v; unsupported calls %v", fake.Live(), fake.Unsupported())
	}
}
