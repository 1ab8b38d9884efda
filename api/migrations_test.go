package api_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shardform/shardform/placement"
	"github.com/shardform/shardform/planner"
	"github.com/shardform/shardform/store"
	"github.com/shardform/shardform/worker"
)

// startDrains gives the placement service a River client: with work, an
// in-process worker runs the node_drain jobs; without, they wait queued.
func startDrains(t *testing.T, pool *pgxpool.Pool, svc *placement.Service, work bool) {
	t.Helper()
	ctx := context.Background()
	client, err := worker.NewClient(pool, store.NewStore(pool), worker.Options{
		Work: work, Placement: svc, FetchPollInterval: 20 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	svc.UseQueue(client)
	if !work {
		return
	}
	if err := client.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stopCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		_ = client.Stop(stopCtx)
	})
}

// schedNode is a node inserted with SQL for the scheduling tests, with
// instances of 1 core, 2 GiB and 10 GB each (named <node>-gs-<n>).
type schedNode struct {
	name, provider, region, status string
	vcpu, memoryMB, diskGB         int
	instances                      int
}

func (b *bundle) insertSchedNodes(orgID string, nodes []schedNode) map[string]string {
	b.t.Helper()
	ctx := context.Background()
	ids := map[string]string{}
	for _, n := range nodes {
		var id string
		if err := b.pool.QueryRow(ctx, `INSERT INTO nodes (organization_id, name, provider, region, instance_type, vcpu, memory_mb, disk_gb, status)
			VALUES ($1, $2, $3, $4, 'cx43', $5, $6, $7, $8) RETURNING id`,
			orgID, n.name, n.provider, n.region, n.vcpu, n.memoryMB, n.diskGB, n.status).Scan(&id); err != nil {
			b.t.Fatal(err)
		}
		if n.instances > 0 {
			if _, err := b.pool.Exec(ctx, `INSERT INTO instances (organization_id, node_id, name, template, cpu_millis, memory_mb, disk_gb)
				SELECT $1, $2, $4 || '-gs-' || g, 'valheim', 1000, 2048, 10 FROM generate_series(1, $3::int) g`, orgID, id, n.instances, n.name); err != nil {
				b.t.Fatal(err)
			}
		}
		ids[n.name] = id
	}
	return ids
}

// storedNodeStatus reads a node's stored status.
func (b *bundle) storedNodeStatus(id string) string {
	b.t.Helper()
	var s string
	if err := b.pool.QueryRow(context.Background(), "SELECT status FROM nodes WHERE id = $1", id).Scan(&s); err != nil {
		b.t.Fatal(err)
	}
	return s
}

// instancesOn counts the instances on each node of an organization, by name.
func (b *bundle) instancesOn(orgID string) map[string]int {
	b.t.Helper()
	rows, err := b.pool.Query(context.Background(), `SELECT n.name, count(i.id) FROM nodes n LEFT JOIN instances i ON i.node_id = n.id
		WHERE n.organization_id = $1 GROUP BY n.name`, orgID)
	if err != nil {
		b.t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var name string
		var n int
		if err := rows.Scan(&name, &n); err != nil {
			b.t.Fatal(err)
		}
		out[name] = n
	}
	return out
}

// overfilled counts the nodes whose reservations exceed their capacity
// after the OS overhead (what every placement checks under its lock), and
// those whose aggregates disagree with their instance rows.
func (b *bundle) overfilled() int {
	b.t.Helper()
	o := planner.DefaultOverhead()
	return b.count(`SELECT count(*) FROM nodes n WHERE reserved_cpu_millis > vcpu * 1000 - $1
		OR reserved_memory_mb > memory_mb - $2 OR reserved_disk_gb * 1024 > disk_gb * 1024 - $3
		OR (instance_count, reserved_cpu_millis, reserved_memory_mb) <> (SELECT count(*)::int, coalesce(sum(cpu_millis), 0)::bigint, coalesce(sum(memory_mb), 0)::bigint FROM instances i WHERE i.node_id = n.id)`,
		o.MilliCPU, o.MemoryMiB, o.DiskMiB)
}

// waitMigration polls a migration until it has ended and returns it.
func (b *bundle) waitMigration(token, id string) response {
	b.t.Helper()
	var m response
	b.eventually("migration "+id, func() bool {
		m = b.expect(req{method: "GET", path: "/v1/migrations/" + id, token: token}, 200)
		s := m.str("status")
		return s != "queued" && s != "running"
	})
	return m
}

func moves(r response) []map[string]any {
	raw, _ := r.Body["moves"].([]any)
	out := make([]map[string]any, len(raw))
	for i, v := range raw {
		out[i] = v.(map[string]any)
	}
	return out
}

func TestCordonUncordon(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{provisioning: true, externalWorkers: true})
	a := b.bootstrap("ops@example.com")
	other := b.register("rival@example.com")
	tok := b.apiToken(a, "nodes:read", "nodes:write", "planner:read")
	reader := b.apiToken(a, "nodes:read")
	ids := b.insertSchedNodes(a.orgID, []schedNode{
		{"fsn-a", "hetzner", "fsn1", "ready", 8, 16384, 160, 1},
		{"repair", "hetzner", "fsn1", "maintenance", 8, 16384, 160, 0},
	})
	theirs := b.insertSchedNodes(other.orgID, []schedNode{{"theirs", "hetzner", "fsn1", "ready", 8, 16384, 160, 0}})["theirs"]
	cordon := func(id, token string, status int) response {
		t.Helper()
		return b.expect(req{method: "POST", path: "/v1/nodes/" + id + "/cordon", token: token}, status)
	}
	uncordon := func(id, token string, status int) response {
		t.Helper()
		return b.expect(req{method: "POST", path: "/v1/nodes/" + id + "/uncordon", token: token}, status)
	}

	n := cordon(ids["fsn-a"], tok, 200)
	if n.str("status") != "cordoned" || n.str("name") != "fsn-a" {
		t.Fatalf("cordon: %s", n.Raw)
	}
	// It takes no new instances, and suggest-fit says why.
	r := b.place(tok, map[string]any{"node_id": ids["fsn-a"], "name": "late", "cpu": 1, "memory_gb": 1, "disk_gb": 1}, 409)
	if !strings.Contains(r.errMsg(), "cordoned") {
		t.Errorf("placement on a cordoned node: %q", r.errMsg())
	}
	if _, why := b.freeOn(tok, "fsn-a", map[string]any{"cpu": 1, "memory_gb": 1, "disk_gb": 1}); !slices.Contains(why, "cordoned") {
		t.Errorf("suggest-fit reasons %v", why)
	}
	// Again: unchanged. Audited each time it succeeded.
	cordon(ids["fsn-a"], tok, 200)
	if got := b.count("SELECT count(*) FROM audit_logs WHERE action = 'POST /v1/nodes/:id/cordon' AND target = $1", ids["fsn-a"]); got != 2 {
		t.Errorf("%d audit entries for the cordons", got)
	}
	n = uncordon(ids["fsn-a"], tok, 200)
	if n.str("status") != "ready" {
		t.Errorf("uncordon: %s", n.Raw)
	}
	uncordon(ids["fsn-a"], tok, 200)
	if got := b.count("SELECT count(*) FROM audit_logs WHERE action = 'POST /v1/nodes/:id/uncordon' AND target = $1", ids["fsn-a"]); got != 2 {
		t.Errorf("%d audit entries for the uncordons", got)
	}
	b.place(tok, map[string]any{"node_id": ids["fsn-a"], "name": "late", "cpu": 1, "memory_gb": 1, "disk_gb": 1}, 201)

	// A stopped node is cordoned too: it shows stopped until started.
	off := b.insertSchedNodes(a.orgID, []schedNode{{"off", "hetzner", "fsn1", "ready", 8, 16384, 160, 0}})["off"]
	if _, err := b.pool.Exec(context.Background(), "UPDATE nodes SET power_state = 'stopped' WHERE id = $1", off); err != nil {
		t.Fatal(err)
	}
	if n := cordon(off, tok, 200); n.str("status") != "stopped" || b.storedNodeStatus(off) != "cordoned" {
		t.Errorf("cordon of a stopped node: %s, stored %s", n.Raw, b.storedNodeStatus(off))
	}
	uncordon(off, tok, 200)
	if s := b.storedNodeStatus(off); s != "ready" {
		t.Errorf("uncordoned stopped node: stored %s", s)
	}
	// An unreachable node (its agent went silent) is cordoned, and stays so
	// when its agent is back; it is not uncordoned while unreachable.
	silent := b.insertSchedNodes(a.orgID, []schedNode{{"silent", "hetzner", "fsn1", "unreachable", 8, 16384, 160, 0}})["silent"]
	uncordon(silent, tok, 409)
	if n := cordon(silent, tok, 200); n.str("status") != "cordoned" {
		t.Errorf("cordon of an unreachable node: %s", n.Raw)
	}
	// A node in maintenance keeps its status.
	for _, r := range []response{cordon(ids["repair"], tok, 409), uncordon(ids["repair"], tok, 409)} {
		if !strings.Contains(r.errMsg(), "maintenance") {
			t.Errorf("maintenance: %q", r.errMsg())
		}
	}
	if s := b.storedNodeStatus(ids["repair"]); s != "maintenance" {
		t.Errorf("status %s", s)
	}

	// Bad input, permissions, another organization's node.
	before := b.count("SELECT count(*) FROM audit_logs")
	cordon("not-a-uuid", tok, 400)
	cordon(ids["fsn-a"], reader, 403)
	cordon(theirs, tok, 404)
	uncordon(theirs, tok, 404)
	b.expect(req{method: "POST", path: "/v1/nodes/" + ids["fsn-a"] + "/cordon"}, 401)
	if s := b.storedNodeStatus(theirs); s != "ready" {
		t.Errorf("their node is %s", s)
	}
	if after := b.count("SELECT count(*) FROM audit_logs"); after != before {
		t.Errorf("refused calls wrote %d audit entries", after-before)
	}
}

func TestDrain(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{drains: true})
	a := b.bootstrap("ops@example.com")
	tok := b.apiToken(a, "nodes:read", "nodes:write")
	reader := b.apiToken(a, "nodes:read")
	// cx43-sized nodes (8 cores, 16 GiB, 160 GB; usable 7.9 cores, 15.5 GiB
	// after the overhead). src (a larger one) holds 6 instances of 1 core,
	// 2 GiB; busy has room for 3 more (memory), roomy for 7; the others are
	// never targets.
	ids := b.insertSchedNodes(a.orgID, []schedNode{
		{"src", "hetzner", "fsn1", "ready", 64, 65536, 2000, 6},
		{"busy", "hetzner", "fsn1", "ready", 8, 16384, 160, 4},
		{"roomy", "hetzner", "fsn1", "ready", 8, 16384, 160, 0},
		{"fenced", "hetzner", "fsn1", "cordoned", 8, 16384, 160, 0},
		{"repair", "hetzner", "fsn1", "maintenance", 8, 16384, 160, 0},
		{"far", "hetzner", "nbg1", "ready", 8, 16384, 160, 0},
		{"aws", "aws", "fsn1", "ready", 8, 16384, 160, 0},
		{"off", "hetzner", "fsn1", "ready", 8, 16384, 160, 0},
		{"silent", "hetzner", "fsn1", "unreachable", 8, 16384, 160, 0},
	})
	// Powered off: never a target (suggest-fit's "stopped").
	if _, err := b.pool.Exec(context.Background(), "UPDATE nodes SET power_state = 'stopped' WHERE id = $1", ids["off"]); err != nil {
		t.Fatal(err)
	}
	// One more instance too large for any other node: it stays.
	b.place(tok, map[string]any{"node_id": ids["src"], "name": "huge", "cpu": 1, "memory_gb": 20, "disk_gb": 1}, 201)
	// busy holds 4 × 2 GiB = 8 GiB of 15.5: the binpack target while it has room.

	// Dry run: the plan, and nothing changes.
	before := b.snapshot()
	plan := b.expect(req{method: "POST", path: "/v1/nodes/" + ids["src"] + "/drain", token: tok, body: map[string]any{"dry_run": true}}, 200)
	b.unchanged(before)
	if plan.Body["dry_run"] != true || plan.str("status") != "planned" || plan.Body["id"] != nil || plan.str("strategy") != "binpack" ||
		plan.Body["moves_total"] != float64(7) || plan.Body["moves_left"] != float64(6) || plan.Body["moves_failed"] != float64(1) {
		t.Fatalf("plan: %s", plan.Raw)
	}
	if s := b.storedNodeStatus(ids["src"]); s != "ready" {
		t.Errorf("a dry run cordoned the node: %s", s)
	}
	planned := map[string]int{}
	for _, mv := range moves(plan) {
		if mv["status"] == "failed" {
			if mv["instance_name"] != "huge" || !strings.Contains(mv["reason"].(string), "insufficient_memory") || !strings.Contains(mv["reason"].(string), "stopped 1") {
				t.Errorf("failed move %v", mv)
			}
			continue
		}
		planned[mv["to_node_name"].(string)]++
	}
	// Largest first: huge is tried first; then binpack fills busy (3 fit)
	// before roomy takes the rest.
	if moves(plan)[0]["instance_name"] != "huge" || planned["busy"] != 3 || planned["roomy"] != 3 {
		t.Errorf("planned %v: %s", planned, plan.Raw)
	}
	spread := b.expect(req{method: "POST", path: "/v1/nodes/" + ids["src"] + "/drain", token: tok, body: map[string]any{"dry_run": true, "strategy": "spread"}}, 200)
	if spread.str("strategy") != "spread" || moves(spread)[1]["to_node_name"] != "roomy" {
		t.Errorf("spread plan: %s", spread.Raw)
	}
	if n := b.count("SELECT count(*) FROM audit_logs WHERE action = 'POST /v1/nodes/:id/drain'"); n != 0 {
		t.Errorf("%d audit entries for dry runs", n)
	}

	// Bad input.
	for _, body := range []any{map[string]any{"strategy": "random"}, map[string]any{"dry_run": "yes"}, map[string]any{"force": true}, "[1]"} {
		b.expect(req{method: "POST", path: "/v1/nodes/" + ids["src"] + "/drain", token: tok, body: body}, 400)
	}
	b.expect(req{method: "POST", path: "/v1/nodes/" + ids["src"] + "/drain", token: reader}, 403)
	b.expect(req{method: "POST", path: "/v1/nodes/nope/drain", token: tok}, 400)
	b.unchanged(before)

	// The drain: 202 with the queued record, then the job's moves. No body: binpack.
	m := b.expect(req{method: "POST", path: "/v1/nodes/" + ids["src"] + "/drain", token: tok}, 202)
	id := m.str("id")
	if m.str("kind") != "drain" || m.str("node_id") != ids["src"] || m.Body["moves_total"] != float64(7) || m.Body["dry_run"] != false {
		t.Fatalf("drain: %s", m.Raw)
	}
	if s := b.storedNodeStatus(ids["src"]); s != "cordoned" {
		t.Errorf("the drained node is %s", s)
	}
	m = b.waitMigration(reader, id)
	if m.str("status") != "partial" || m.Body["moves_done"] != float64(6) || m.Body["moves_failed"] != float64(1) || m.Body["moves_left"] != float64(0) ||
		m.Body["started_at"] == nil || m.Body["finished_at"] == nil {
		t.Fatalf("drain ended: %s", m.Raw)
	}
	failures := m.Body["failures"].([]any)
	if len(failures) != 1 || failures[0].(map[string]any)["instance_name"] != "huge" || !strings.Contains(failures[0].(map[string]any)["reason"].(string), "hetzner") {
		t.Errorf("failures %v", failures)
	}
	if on := b.instancesOn(a.orgID); on["src"] != 1 || on["busy"] != 7 || on["roomy"] != 3 || on["fenced"]+on["repair"]+on["far"]+on["aws"]+on["off"]+on["silent"] != 0 {
		t.Errorf("instances now on %v", on)
	}
	if n := b.overfilled(); n != 0 {
		t.Errorf("%d nodes overfilled", n)
	}
	if n := b.count("SELECT count(*) FROM audit_logs WHERE action = 'POST /v1/nodes/:id/drain' AND target = $1", ids["src"]); n != 1 {
		t.Errorf("%d audit entries for the drain", n)
	}
	// A second drain of the node: the huge instance still fits nowhere.
	again := b.expect(req{method: "POST", path: "/v1/nodes/" + ids["src"] + "/drain", token: tok}, 202)
	if again = b.waitMigration(tok, again.str("id")); again.str("status") != "partial" || again.Body["moves_total"] != float64(1) {
		t.Errorf("second drain: %s", again.Raw)
	}
	// The records: newest first, filters.
	l := b.expect(req{method: "GET", path: "/v1/migrations?node=" + ids["src"], token: reader}, 200)
	if list := l.list(); len(list) != 2 || list[0]["id"] != again.str("id") || list[1]["moves_done"] != float64(6) || list[0]["moves"] != nil {
		t.Errorf("list: %s", l.Raw)
	}
	for query, want := range map[string]int{"status=partial": 2, "status=succeeded": 0, "kind=drain": 2, "kind=migrate": 0, "node=" + ids["roomy"]: 0} {
		if got := len(b.expect(req{method: "GET", path: "/v1/migrations?" + query, token: reader}, 200).list()); got != want {
			t.Errorf("%s: %d, want %d", query, got, want)
		}
	}
	b.expect(req{method: "GET", path: "/v1/migrations?status=done", token: reader}, 400)
	b.expect(req{method: "GET", path: "/v1/migrations?kind=evict", token: reader}, 400)
	b.expect(req{method: "GET", path: "/v1/migrations?node=x", token: reader}, 400)
	// Ended: nothing to cancel.
	if r := b.expect(req{method: "POST", path: "/v1/migrations/" + id + "/cancel", token: tok}, 409); !strings.Contains(r.errMsg(), "partial") {
		t.Errorf("cancel of an ended drain: %q", r.errMsg())
	}

	// An empty node: succeeded at once, cordoned.
	e := b.expect(req{method: "POST", path: "/v1/nodes/" + ids["far"] + "/drain", token: tok, body: map[string]any{}}, 202)
	if mv, ok := e.Body["moves"].([]any); e.str("status") != "succeeded" || e.Body["moves_total"] != float64(0) || !ok || len(mv) != 0 || b.storedNodeStatus(ids["far"]) != "cordoned" {
		t.Errorf("empty drain: %s", e.Raw)
	}
	// An unreachable node is cordoned by its drain (ready no more when its
	// agent is back); one in maintenance keeps its status.
	b.waitMigration(tok, b.expect(req{method: "POST", path: "/v1/nodes/" + ids["silent"] + "/drain", token: tok}, 202).str("id"))
	if s := b.storedNodeStatus(ids["silent"]); s != "cordoned" {
		t.Errorf("drained unreachable node is %s", s)
	}
	b.waitMigration(tok, b.expect(req{method: "POST", path: "/v1/nodes/" + ids["repair"] + "/drain", token: tok}, 202).str("id"))
	if s := b.storedNodeStatus(ids["repair"]); s != "maintenance" {
		t.Errorf("drained maintenance node is %s", s)
	}
}

// TestDrainOneAtATime: a second drain or a migration of a node while one is
// queued is 409 naming it; uncordon too; cancel of a queued drain is at once.
func TestDrainOneAtATime(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{drainQueue: true, provisioning: true, externalWorkers: true}) // jobs are queued, never run
	a := b.bootstrap("ops@example.com")
	tok := b.apiToken(a, "nodes:read", "nodes:write")
	ids := b.insertSchedNodes(a.orgID, []schedNode{
		{"src", "hetzner", "fsn1", "ready", 8, 16384, 160, 3},
		{"dst", "hetzner", "fsn1", "ready", 8, 16384, 160, 0},
	})
	m := b.expect(req{method: "POST", path: "/v1/nodes/" + ids["src"] + "/drain", token: tok}, 202)
	id := m.str("id")
	if m.str("status") != "queued" || m.Body["moves_left"] != float64(3) {
		t.Fatalf("%s", m.Raw)
	}
	for _, r := range []req{
		{method: "POST", path: "/v1/nodes/" + ids["src"] + "/drain", token: tok},
		{method: "POST", path: "/v1/nodes/" + ids["src"] + "/migrate", token: tok, body: map[string]any{"target_node_id": ids["dst"]}},
		{method: "POST", path: "/v1/nodes/" + ids["src"] + "/uncordon", token: tok},
	} {
		if resp := b.expect(r, 409); !strings.Contains(resp.errMsg(), id) {
			t.Errorf("%s: %q does not name %s", r.path, resp.errMsg(), id)
		}
	}
	c := b.expect(req{method: "POST", path: "/v1/migrations/" + id + "/cancel", token: tok}, 202)
	if c.str("status") != "cancelled" || c.Body["moves_cancelled"] != float64(3) || c.Body["finished_at"] == nil {
		t.Errorf("cancel: %s", c.Raw)
	}
	if n := b.count("SELECT count(*) FROM audit_logs WHERE action = 'POST /v1/migrations/:id/cancel' AND target = $1", id); n != 1 {
		t.Errorf("%d audit entries for the cancel", n)
	}
	b.expect(req{method: "POST", path: "/v1/migrations/" + id + "/cancel", token: tok}, 409)
	// The node stays cordoned until uncordoned, which now works.
	if s := b.storedNodeStatus(ids["src"]); s != "cordoned" {
		t.Errorf("status %s", s)
	}
	b.expect(req{method: "POST", path: "/v1/nodes/" + ids["src"] + "/uncordon", token: tok}, 200)
	if on := b.instancesOn(a.orgID); on["src"] != 3 {
		t.Errorf("instances %v", on)
	}
}

// TestDrainCancelRunning stops a running drain before its next move: the
// drain's first move waits on a lock the test holds on its only target;
// the cancel lands meanwhile; no instance moves.
func TestDrainCancelRunning(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{drains: true})
	a := b.bootstrap("ops@example.com")
	tok := b.apiToken(a, "nodes:read", "nodes:write")
	ids := b.insertSchedNodes(a.orgID, []schedNode{
		{"src", "hetzner", "fsn1", "ready", 8, 16384, 160, 4},
		{"dst", "hetzner", "fsn1", "ready", 8, 16384, 160, 0},
	})
	ctx := context.Background()
	hold, err := b.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = hold.Rollback(ctx) }()
	if _, err := hold.Exec(ctx, "SELECT 1 FROM nodes WHERE id = $1 FOR UPDATE", ids["dst"]); err != nil {
		t.Fatal(err)
	}
	id := b.expect(req{method: "POST", path: "/v1/nodes/" + ids["src"] + "/drain", token: tok}, 202).str("id")
	// Running, and its first move is waiting for the node lock.
	b.eventually("the drain's move to wait for the lock", func() bool {
		return b.count(`SELECT count(*) FROM pg_locks l JOIN pg_stat_activity s ON s.pid = l.pid
			WHERE NOT l.granted AND s.datname = current_database()`) > 0
	})
	c := b.expect(req{method: "POST", path: "/v1/migrations/" + id + "/cancel", token: tok}, 202)
	if c.str("status") != "running" || c.Body["cancel_requested"] != true {
		t.Fatalf("cancel: %s", c.Raw)
	}
	if err := hold.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	m := b.waitMigration(tok, id)
	if m.str("status") != "cancelled" || m.Body["moves_done"] != float64(0) || m.Body["moves_cancelled"] != float64(4) {
		t.Errorf("cancelled drain: %s", m.Raw)
	}
	if on := b.instancesOn(a.orgID); on["src"] != 4 || on["dst"] != 0 {
		t.Errorf("instances %v", on)
	}
}

// TestDrainParallelPlacements drains a node while placements race for the
// same targets: no node is ever overfilled, every instance of the drained
// node ends on a node or stays with a reason.
func TestDrainParallelPlacements(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{drains: true, rateLimit: 100000})
	a := b.bootstrap("ops@example.com")
	tok := b.apiToken(a, "nodes:read", "nodes:write")
	// Four targets with room for 7 instances each (memory: 15.5 GiB / 2);
	// 20 to drain and 8 placers that each try 10 placements: more than fits.
	nodes := []schedNode{{"src", "hetzner", "fsn1", "ready", 64, 65536, 2000, 20}}
	for i := range 4 {
		nodes = append(nodes, schedNode{fmt.Sprintf("t%d", i), "hetzner", "fsn1", "ready", 8, 16384, 160, 0})
	}
	ids := b.insertSchedNodes(a.orgID, nodes)
	var placed, refused atomic.Int64
	start := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			<-start
			for i := range 10 {
				r, err := b.try(req{method: "POST", path: "/v1/instances", token: tok, body: map[string]any{
					"node_id": ids[fmt.Sprintf("t%d", (w+i)%4)], "name": fmt.Sprintf("p%d-%d", w, i), "cpu": 1, "memory_gb": 2, "disk_gb": 10}})
				switch {
				case err != nil:
					t.Error(err)
				case r.Status == 201:
					placed.Add(1)
				case r.Status == 409:
					refused.Add(1)
				default:
					t.Errorf("placement: %d %s", r.Status, r.Raw)
				}
			}
		})
	}
	close(start)
	id := b.expect(req{method: "POST", path: "/v1/nodes/" + ids["src"] + "/drain", token: tok}, 202).str("id")
	wg.Wait()
	m := b.waitMigration(tok, id)
	if n := b.overfilled(); n != 0 {
		t.Errorf("%d nodes overfilled", n)
	}
	done, failed := int(m.Body["moves_done"].(float64)), int(m.Body["moves_failed"].(float64))
	on := b.instancesOn(a.orgID)
	onTargets := on["t0"] + on["t1"] + on["t2"] + on["t3"]
	if done+failed != 20 || on["src"] != failed || onTargets != done+int(placed.Load()) || onTargets > 28 {
		t.Errorf("moved %d, failed %d, placed %d, refused %d; on %v: %s", done, failed, placed.Load(), refused.Load(), on, m.Raw)
	}
	for _, mv := range moves(m) {
		if mv["status"] == "failed" && mv["reason"] == "" {
			t.Errorf("failed move without a reason: %v", mv)
		}
	}
}

func TestMigrate(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a := b.bootstrap("ops@example.com")
	other := b.register("rival@example.com")
	tok := b.apiToken(a, "nodes:read", "nodes:write")
	ids := b.insertSchedNodes(a.orgID, []schedNode{
		{"src", "hetzner", "fsn1", "ready", 8, 16384, 160, 5},  // 5 × 2 GiB
		{"small", "hetzner", "fsn1", "ready", 8, 8192, 160, 0}, // 7.5 GiB usable: 3 fit
		{"big", "aws", "eu-central-1", "ready", 8, 16384, 160, 1},
		{"fenced", "hetzner", "fsn1", "cordoned", 8, 16384, 160, 0},
	})
	theirs := b.insertSchedNodes(other.orgID, []schedNode{{"theirs", "hetzner", "fsn1", "ready", 8, 16384, 160, 0}})["theirs"]
	migrate := func(from string, body any, status int) response {
		t.Helper()
		return b.expect(req{method: "POST", path: "/v1/nodes/" + from + "/migrate", token: tok, body: body}, status)
	}

	before := b.snapshot()
	// All or nothing: the 409 names the short resource and what does not fit.
	r := migrate(ids["src"], map[string]any{"target_node_id": ids["small"]}, 409)
	if msg := r.errMsg(); !strings.Contains(msg, "insufficient memory: 7680 MiB free, the instances need 10240 MiB") ||
		!strings.Contains(msg, "src-gs-4, src-gs-5") || strings.Contains(msg, "src-gs-3") {
		t.Errorf("409: %q", msg)
	}
	if r := migrate(ids["src"], map[string]any{"target_node_id": ids["fenced"]}, 409); !strings.Contains(r.errMsg(), "cordoned") {
		t.Errorf("cordoned target: %q", r.errMsg())
	}
	for _, body := range []any{map[string]any{}, map[string]any{"target_node_id": ids["src"]}, map[string]any{"target_node_id": "x"},
		map[string]any{"target_node_id": strings.ToUpper(ids["big"])}, map[string]any{"target_node_id": ids["big"], "force": true}} {
		migrate(ids["src"], body, 400)
	}
	migrate(ids["src"], map[string]any{"target_node_id": theirs}, 404)
	migrate(theirs, map[string]any{"target_node_id": ids["big"]}, 404)
	b.unchanged(before)
	if b.storedNodeStatus(ids["src"]) != "ready" || b.count("SELECT count(*) FROM migrations") != 0 {
		t.Fatal("a refused migration changed something")
	}

	m := migrate(ids["src"], map[string]any{"target_node_id": ids["big"]}, 201)
	if m.str("kind") != "migrate" || m.str("status") != "succeeded" || m.str("target_node_id") != ids["big"] || m.str("target_node_name") != "big" ||
		m.Body["moves_done"] != float64(5) || m.Body["moves_total"] != float64(5) {
		t.Errorf("migrate: %s", m.Raw)
	}
	if on := b.instancesOn(a.orgID); on["src"] != 0 || on["big"] != 6 {
		t.Errorf("instances %v", on)
	}
	if b.storedNodeStatus(ids["src"]) != "cordoned" || b.overfilled() != 0 {
		t.Errorf("after the migration: %s, %d overfilled", b.storedNodeStatus(ids["src"]), b.overfilled())
	}
	if n := b.count("SELECT count(*) FROM audit_logs WHERE action = 'POST /v1/nodes/:id/migrate' AND target = $1", ids["src"]); n != 1 {
		t.Errorf("%d audit entries", n)
	}
	got := b.expect(req{method: "GET", path: "/v1/migrations/" + m.str("id"), token: tok}, 200)
	for _, mv := range moves(got) {
		if mv["status"] != "moved" || mv["to_node_name"] != "big" {
			t.Errorf("move %v", mv)
		}
	}
	// Back: the target is cordoned now.
	migrate(ids["big"], map[string]any{"target_node_id": ids["src"]}, 409)
}

// TestMigrationsIsolation: another organization's nodes and migrations are
// 404 to every endpoint, and never listed.
func TestMigrationsIsolation(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{drains: true, provisioning: true, externalWorkers: true})
	a := b.bootstrap("ops@example.com")
	other := b.register("rival@example.com")
	mine := b.apiToken(a, "nodes:read", "nodes:write")
	theirs := b.apiToken(other, "nodes:read", "nodes:write")
	ids := b.insertSchedNodes(a.orgID, []schedNode{
		{"src", "hetzner", "fsn1", "ready", 8, 16384, 160, 2},
		{"dst", "hetzner", "fsn1", "ready", 8, 16384, 160, 0},
	})
	tids := b.insertSchedNodes(other.orgID, []schedNode{
		{"their-src", "hetzner", "fsn1", "ready", 8, 16384, 160, 2},
		{"their-dst", "hetzner", "fsn1", "ready", 8, 16384, 160, 0},
	})
	id := b.expect(req{method: "POST", path: "/v1/nodes/" + ids["src"] + "/drain", token: mine}, 202).str("id")
	b.waitMigration(mine, id)
	// Their drain must not move onto our nodes, nor ours onto theirs.
	tid := b.expect(req{method: "POST", path: "/v1/nodes/" + tids["their-src"] + "/drain", token: theirs}, 202).str("id")
	if m := b.waitMigration(theirs, tid); m.str("status") != "succeeded" {
		t.Errorf("their drain: %s", m.Raw)
	}
	if on := b.instancesOn(a.orgID); on["dst"] != 2 {
		t.Errorf("ours: %v", on)
	}
	if on := b.instancesOn(other.orgID); on["their-dst"] != 2 {
		t.Errorf("theirs: %v", on)
	}
	for _, r := range []req{
		{method: "GET", path: "/v1/migrations/" + id},
		{method: "POST", path: "/v1/migrations/" + id + "/cancel"},
		{method: "POST", path: "/v1/nodes/" + ids["dst"] + "/drain"},
		{method: "POST", path: "/v1/nodes/" + ids["dst"] + "/drain", body: map[string]any{"dry_run": true}},
		{method: "POST", path: "/v1/nodes/" + ids["dst"] + "/cordon"},
		{method: "POST", path: "/v1/nodes/" + tids["their-dst"] + "/migrate", body: map[string]any{"target_node_id": ids["dst"]}},
		{method: "DELETE", path: "/v1/nodes/" + ids["dst"] + "?force=true"},
	} {
		r.token = theirs
		b.expect(r, 404)
	}
	if l := b.expect(req{method: "GET", path: "/v1/migrations", token: theirs}, 200).list(); len(l) != 1 || l[0]["id"] != tid {
		t.Errorf("their list: %v", l)
	}
	if l := b.expect(req{method: "GET", path: "/v1/migrations?node=" + ids["src"], token: theirs}, 200).list(); len(l) != 0 {
		t.Errorf("their list by our node: %v", l)
	}
}

// TestDeleteNodeHoldingInstances: deleting a node, or destroying its
// provision request, while it holds instances is 409 unless force.
func TestDeleteNodeHoldingInstances(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{provisioning: true, externalWorkers: true})
	a := b.bootstrap("ops@example.com")
	tok := b.apiToken(a, "nodes:read", "nodes:write", "provision:read", "provision:write")
	ids := b.insertSchedNodes(a.orgID, []schedNode{
		{"full", "hetzner", "fsn1", "ready", 8, 16384, 160, 2},
		{"empty", "hetzner", "fsn1", "ready", 8, 16384, 160, 0},
	})
	r := b.expect(req{method: "DELETE", path: "/v1/nodes/" + ids["full"], token: tok}, 409)
	if msg := r.errMsg(); !strings.Contains(msg, "holds 2 instances:") || !strings.Contains(msg, "/v1/nodes/"+ids["full"]+"/drain") || !strings.Contains(msg, "force=true") {
		t.Errorf("409: %q", msg)
	}
	b.expect(req{method: "DELETE", path: "/v1/nodes/" + ids["full"] + "?force=maybe", token: tok}, 400)
	b.expect(req{method: "DELETE", path: "/v1/nodes/" + ids["empty"], token: tok}, 204)
	b.expect(req{method: "DELETE", path: "/v1/nodes/" + ids["full"] + "?force=true", token: tok}, 204)
	if n := b.count("SELECT count(*) FROM instances WHERE organization_id = $1", a.orgID); n != 0 {
		t.Errorf("%d instances left", n)
	}

	// A provision request's node (registered by hand here: the destroy job
	// is only queued, no worker runs it).
	p := b.expect(req{method: "POST", path: "/v1/provision", token: tok, body: map[string]any{
		"provider": "local", "region": "local", "instance_type": "local-small", "name": "web-1"}}, 201)
	pid := p.str("id")
	var nodeID string
	if err := b.pool.QueryRow(context.Background(), `INSERT INTO nodes (organization_id, provision_id, name, provider, region, instance_type, vcpu, memory_mb, disk_gb)
		VALUES ($1, $2, 'web-1', 'local', 'local', 'local-small', 1, 1024, 10) RETURNING id`, a.orgID, pid).Scan(&nodeID); err != nil {
		t.Fatal(err)
	}
	b.place(tok, map[string]any{"node_id": nodeID, "name": "gs", "cpu": 0.5, "memory_gb": 0.25, "disk_gb": 1}, 201)
	r = b.expect(req{method: "DELETE", path: "/v1/provision/" + pid, token: tok}, 409)
	if !strings.Contains(r.errMsg(), "holds 1 instance:") || !strings.Contains(r.errMsg(), "DELETE /v1/provision/"+pid+"?force=true") {
		t.Errorf("409: %q", r.errMsg())
	}
	if s := b.expect(req{method: "GET", path: "/v1/provision/" + pid, token: tok}, 200).str("status"); s != "pending" {
		t.Errorf("refused destroy left the request %s", s)
	}
	d := b.expect(req{method: "DELETE", path: "/v1/provision/" + pid + "?force=true", token: tok}, 202)
	if d.str("status") != "destroying" {
		t.Errorf("destroy: %s", d.Raw)
	}
	// Cordoned while it is destroyed.
	if s := b.storedNodeStatus(nodeID); s != "cordoned" {
		t.Errorf("node being destroyed is %s", s)
	}
	b.place(tok, map[string]any{"node_id": nodeID, "name": "gs-2", "cpu": 0.1, "memory_gb": 0.1, "disk_gb": 1}, 409)
}

// TestDrainJobGone: a drain whose River job ended without recording an
// outcome (deleted, cancelled in River UI) no longer blocks its node: the
// uncordon, GET of the migration and the next drain end it, failed,
// saying why.
func TestDrainJobGone(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{provisioning: true, externalWorkers: true, drainQueue: true})
	a := b.bootstrap("ops@example.com")
	tok := b.apiToken(a, "nodes:read", "nodes:write")
	ids := b.insertSchedNodes(a.orgID, []schedNode{
		{"src", "hetzner", "fsn1", "ready", 8, 16384, 160, 2},
		{"dst", "hetzner", "fsn1", "ready", 8, 16384, 160, 0},
	})
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := b.pool.Exec(context.Background(), sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	src := ids["src"]
	id := b.expect(req{method: "POST", path: "/v1/nodes/" + src + "/drain", token: tok}, 202).str("id")
	if r := b.expect(req{method: "POST", path: "/v1/nodes/" + src + "/uncordon", token: tok}, 409); !strings.Contains(r.errMsg(), "cancel first") {
		t.Errorf("uncordon during a drain: %q", r.errMsg())
	}
	exec("DELETE FROM river_job WHERE id = (SELECT job_id FROM migrations WHERE id = $1)", id)
	if n := b.expect(req{method: "POST", path: "/v1/nodes/" + src + "/uncordon", token: tok}, 200); n.str("status") != "ready" {
		t.Errorf("uncordon after the drain's job went: %s", n.Raw)
	}
	m := b.expect(req{method: "GET", path: "/v1/migrations/" + id, token: tok}, 200)
	if m.str("status") != "failed" || !strings.Contains(m.str("error"), "is deleted without recording an outcome") || m.Body["moves_cancelled"] != float64(2) {
		t.Errorf("drain whose job was deleted: %s", m.Raw)
	}

	id = b.expect(req{method: "POST", path: "/v1/nodes/" + src + "/drain", token: tok}, 202).str("id")
	exec("UPDATE river_job SET state = 'cancelled', finalized_at = now() WHERE id = (SELECT job_id FROM migrations WHERE id = $1)", id)
	if m := b.expect(req{method: "GET", path: "/v1/migrations/" + id, token: tok}, 200); m.str("status") != "failed" || !strings.Contains(m.str("error"), "is cancelled without recording an outcome") {
		t.Errorf("drain whose job was cancelled: %s", m.Raw)
	}
	b.expect(req{method: "POST", path: "/v1/nodes/" + src + "/drain", token: tok}, 202)
}
