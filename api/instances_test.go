package api_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// nodeReservation reads a node's aggregates, kept by the triggers on instances.
func (b *bundle) nodeReservation(nodeID string) [4]int {
	b.t.Helper()
	return [4]int{
		b.count("SELECT reserved_cpu_millis FROM nodes WHERE id = $1", nodeID),
		b.count("SELECT reserved_memory_mb FROM nodes WHERE id = $1", nodeID),
		b.count("SELECT reserved_disk_gb FROM nodes WHERE id = $1", nodeID),
		b.count("SELECT instance_count FROM nodes WHERE id = $1", nodeID),
	} // cpu millis, memory MiB, disk GB, instances
}

// place posts an instance and expects status.
func (b *bundle) place(token string, body map[string]any, status int) response {
	b.t.Helper()
	return b.expect(req{method: "POST", path: "/v1/instances", token: token, body: body}, status)
}

// freeOn returns suggest-fit's free capacity of one node (nil when the node
// is rejected) and its rejection reasons.
func (b *bundle) freeOn(token, nodeName string, need map[string]any) (map[string]any, []string) {
	b.t.Helper()
	r := b.expect(req{method: "POST", path: "/v1/planner/suggest-fit", token: token, body: need}, 200)
	for _, f := range r.Body["fits"].([]any) {
		if f := f.(map[string]any); f["name"] == nodeName {
			return f["free"].(map[string]any), nil
		}
	}
	for _, n := range r.Body["rejected"].([]any) {
		if n := n.(map[string]any); n["name"] == nodeName {
			var why []string
			for _, w := range n["reasons"].([]any) {
				why = append(why, w.(string))
			}
			return nil, why
		}
	}
	b.t.Fatalf("node %s not in suggest-fit: %s", nodeName, r.Raw)
	return nil, nil
}

func resv(r response) map[string]any { return r.Body["reservation"].(map[string]any) }

func TestInstancesCRUD(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a := b.bootstrap("ops@example.com")
	tok := b.apiToken(a, "nodes:read", "nodes:write")
	ids := b.insertNodes(a.orgID, []fitNode{
		{name: "fsn-a", region: "fsn1", status: "ready", vcpu: 8, memoryMB: 16384, diskGB: 160},
		{name: "fsn-b", region: "fsn1", status: "ready", vcpu: 8, memoryMB: 16384, diskGB: 160},
	})

	byHand := b.place(tok, map[string]any{"node_id": ids["fsn-a"], "name": "vh-1", "cpu": 2, "memory_gb": 6, "disk_gb": 10.5}, 201)
	if r := resv(byHand); byHand.str("name") != "vh-1" || byHand.str("node_id") != ids["fsn-a"] || byHand.str("node_name") != "fsn-a" ||
		byHand.str("template") != "" || byHand.Body["players"] != float64(0) ||
		r["milli_cpu"] != float64(2000) || r["memory_mib"] != float64(6144) || r["disk_mib"] != float64(11*1024) { // disk rounds up to whole GiB
		t.Errorf("by hand: %s", byHand.Raw)
	}
	if n := b.count("SELECT count(*) FROM audit_logs WHERE action = 'POST /v1/instances' AND target = $1", byHand.str("id")); n != 1 {
		t.Errorf("%d audit entries for the placement", n)
	}

	// From a template: the requirement derived from it (valheim, 10 players: 2 cores, 6 GiB, 2 GiB disk).
	fromTemplate := b.place(tok, map[string]any{"node_id": ids["fsn-a"], "name": "vh-2", "template": "valheim", "players": 10}, 201)
	if r := resv(fromTemplate); fromTemplate.str("template") != "valheim" || fromTemplate.Body["players"] != float64(10) ||
		r["milli_cpu"] != float64(2000) || r["memory_mib"] != float64(6144) || r["disk_mib"] != float64(2048) {
		t.Errorf("from template: %s", fromTemplate.Raw)
	}
	// A template with an override; players default to the template's.
	override := b.place(tok, map[string]any{"node_id": ids["fsn-b"], "name": "mc-1", "template": "minecraft-java-paper", "disk_gb": 40}, 201)
	if r := resv(override); override.Body["players"] != float64(20) || r["disk_mib"] != float64(40*1024) || r["milli_cpu"] != float64(1000) {
		t.Errorf("override: %s", override.Raw)
	}

	if got := b.nodeReservation(ids["fsn-a"]); got != [4]int{4000, 12288, 13, 2} {
		t.Errorf("fsn-a aggregates %v", got)
	}

	t.Run("list", func(t *testing.T) {
		r := b.expect(req{method: "GET", path: "/v1/instances", token: tok}, 200)
		if l := r.list(); len(l) != 3 || l[0]["name"] != "vh-1" || l[2]["name"] != "mc-1" || r.Body["meta"].(map[string]any)["total"] != float64(3) {
			t.Errorf("%s", r.Raw)
		}
		filters := []struct {
			query string
			want  []string
		}{
			{"node=" + ids["fsn-a"], []string{"vh-1", "vh-2"}},
			{"node=" + ids["fsn-b"], []string{"mc-1"}},
			{"template=valheim", []string{"vh-2"}},
			{"template=valheim&node=" + ids["fsn-b"], nil},
			{"limit=1&page=2", []string{"vh-2"}},
		}
		for _, f := range filters {
			r := b.expect(req{method: "GET", path: "/v1/instances?" + f.query, token: tok}, 200)
			var got []string
			for _, in := range r.list() {
				got = append(got, in["name"].(string))
			}
			if fmt.Sprint(got) != fmt.Sprint(f.want) {
				t.Errorf("%s: %v, want %v", f.query, got, f.want)
			}
		}
	})

	t.Run("get and delete", func(t *testing.T) {
		id := byHand.str("id")
		r := b.expect(req{method: "GET", path: "/v1/instances/" + id, token: tok}, 200)
		if r.str("name") != "vh-1" || r.str("node_name") != "fsn-a" {
			t.Errorf("%s", r.Raw)
		}
		b.expect(req{method: "DELETE", path: "/v1/instances/" + id, token: tok}, 204)
		b.expect(req{method: "GET", path: "/v1/instances/" + id, token: tok}, 404)
		b.expect(req{method: "DELETE", path: "/v1/instances/" + id, token: tok}, 404)
		b.expect(req{method: "GET", path: "/v1/instances/not-a-uuid", token: tok}, 400)
		if got := b.nodeReservation(ids["fsn-a"]); got != [4]int{2000, 6144, 2, 1} {
			t.Errorf("fsn-a aggregates after delete %v", got)
		}
		// The name is free again.
		b.place(tok, map[string]any{"node_id": ids["fsn-b"], "name": "vh-1", "cpu": 1, "memory_gb": 1, "disk_gb": 1}, 201)
	})

	t.Run("deleting the node removes its instances", func(t *testing.T) {
		id := override.str("id")
		if _, err := b.pool.Exec(t.Context(), "DELETE FROM nodes WHERE id = $1", ids["fsn-b"]); err != nil {
			t.Fatal(err)
		}
		b.expect(req{method: "GET", path: "/v1/instances/" + id, token: tok}, 404)
		b.place(tok, map[string]any{"node_id": ids["fsn-b"], "name": "late", "cpu": 1, "memory_gb": 1, "disk_gb": 1}, 404)
	})
}

func TestInstancesValidation(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a := b.bootstrap("ops@example.com")
	tok := b.apiToken(a, "nodes:read", "nodes:write")
	ids := b.insertNodes(a.orgID, []fitNode{
		{name: "fsn-a", region: "fsn1", status: "ready", vcpu: 8, memoryMB: 16384, diskGB: 160},
		{name: "fsn-b", region: "fsn1", status: "ready", vcpu: 8, memoryMB: 16384, diskGB: 160},
		{name: "fsn-cordoned", region: "fsn1", status: "cordoned", vcpu: 8, memoryMB: 16384, diskGB: 160},
		{name: "fsn-maint", region: "fsn1", status: "maintenance", vcpu: 8, memoryMB: 16384, diskGB: 160},
	})
	b.place(tok, map[string]any{"node_id": ids["fsn-a"], "name": "taken", "cpu": 1, "memory_gb": 1, "disk_gb": 1}, 201)

	body := func(kv ...any) map[string]any {
		m := map[string]any{"node_id": ids["fsn-a"], "name": "gs-1", "cpu": 1, "memory_gb": 2, "disk_gb": 10}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(m, kv[i].(string))
			} else {
				m[kv[i].(string)] = kv[i+1]
			}
		}
		return m
	}
	tests := []struct {
		name   string
		body   any
		status int
		want   string // in the error message
	}{
		{"no node", body("node_id", nil), 400, "node_id: is required"},
		{"malformed node", body("node_id", "fsn-a"), 400, "node_id: must be a node id"},
		{"unknown node", body("node_id", "00000000-0000-4000-8000-000000000000"), 404, "node not found"},
		{"no name", body("name", nil), 400, "name: is required"},
		{"upper-case name", body("name", "GS-1"), 400, "name: must be a DNS label"},
		{"name with a dot", body("name", "gs.1"), 400, "name: must be a DNS label"},
		{"name starting with a hyphen", body("name", "-gs"), 400, "name: must be a DNS label"},
		{"name too long", body("name", strings.Repeat("a", 64)), 400, "name: must be a DNS label"},
		{"no cpu", body("cpu", nil), 400, "cpu: is required"},
		{"no memory", body("memory_gb", nil), 400, "memory_gb: is required"},
		{"no disk", body("disk_gb", nil), 400, "disk_gb: is required"},
		{"zero cpu", body("cpu", 0), 400, "cpu: must be positive"},
		{"negative cpu", body("cpu", -1), 400, "cpu: must be positive"},
		{"zero memory", body("memory_gb", 0), 400, "memory_gb: must be positive"},
		{"negative disk", body("disk_gb", -10), 400, "disk_gb: must be positive"},
		{"cpu as text", body("cpu", "two"), 400, "cpu: must be a number"},
		{"huge cpu", body("cpu", 5000), 400, "cpu: must be at most"},
		{"unknown template", body("template", "doom"), 400, "template: unknown template"},
		{"players without a template", body("players", 4), 400, "players: needs a template"},
		{"too many players", body("template", "valheim", "players", 11), 400, "players: must be at most 10"},
		{"negative players", body("template", "valheim", "players", -1), 400, "players: must be positive"},
		{"unknown field", body("region", "fsn1"), 400, "region: unknown field"},
		{"not an object", "[1]", 400, "JSON object"},
		{"duplicate name", body("name", "taken", "node_id", ids["fsn-b"]), 409, `"taken" already exists`},
		{"cordoned node", body("node_id", ids["fsn-cordoned"]), 409, "node fsn-cordoned is cordoned"},
		{"node in maintenance", body("node_id", ids["fsn-maint"]), 409, "node fsn-maint is in maintenance"},
		{"too big for the node", body("memory_gb", 16), 409, "insufficient memory: 14848 MiB free, the instance needs 16384 MiB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := b.snapshot()
			r := b.expect(req{method: "POST", path: "/v1/instances", token: tok, body: tt.body}, tt.status)
			if !strings.Contains(r.errMsg(), tt.want) {
				t.Errorf("error %q, want it to contain %q", r.errMsg(), tt.want)
			}
			b.unchanged(before)
		})
	}

	queries := []struct{ query, want string }{
		{"node=fsn-a", "node: must be a node id"},
		{"limit=0", "limit:"},
		{"page=x", "page:"},
	}
	for _, q := range queries {
		t.Run("list "+q.query, func(t *testing.T) {
			r := b.expect(req{method: "GET", path: "/v1/instances?" + q.query, token: tok}, 400)
			if !strings.Contains(r.errMsg(), q.want) {
				t.Errorf("error %q, want %q", r.errMsg(), q.want)
			}
		})
	}

	t.Run("move", func(t *testing.T) {
		id := b.expect(req{method: "GET", path: "/v1/instances", token: tok}, 200).list()[0]["id"].(string)
		for _, c := range []struct {
			body   any
			status int
			want   string
		}{
			{map[string]any{}, 400, "node_id: is required"},
			{map[string]any{"node_id": "x"}, 400, "node_id: must be a node id"},
			{map[string]any{"node_id": ids["fsn-b"], "name": "x"}, 400, "name: unknown field"},
			{map[string]any{"node_id": "00000000-0000-4000-8000-000000000000"}, 404, "node not found"},
			{map[string]any{"node_id": ids["fsn-cordoned"]}, 409, "cordoned"},
		} {
			before := b.snapshot()
			r := b.expect(req{method: "POST", path: "/v1/instances/" + id + "/move", token: tok, body: c.body}, c.status)
			if !strings.Contains(r.errMsg(), c.want) {
				t.Errorf("move %v: error %q, want %q", c.body, r.errMsg(), c.want)
			}
			b.unchanged(before)
		}
		b.expect(req{method: "POST", path: "/v1/instances/00000000-0000-4000-8000-000000000000/move", token: tok, body: map[string]any{"node_id": ids["fsn-b"]}}, 404)
		if got := b.nodeReservation(ids["fsn-a"]); got != [4]int{1000, 1024, 1, 1} {
			t.Errorf("fsn-a aggregates %v", got)
		}
	})
}

// TestInstancesFit fills a node until the next instance is refused; the
// aggregates and suggest-fit's free capacity follow every change.
func TestInstancesFit(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a := b.bootstrap("ops@example.com")
	tok := b.apiToken(a, "nodes:read", "nodes:write", "planner:read")
	// Usable after the OS overhead (100m, 512 MiB, 4 GiB): 3900m, 7680 MiB, 96 GiB.
	ids := b.insertNodes(a.orgID, []fitNode{
		{name: "small", region: "fsn1", status: "ready", vcpu: 4, memoryMB: 8192, diskGB: 100},
		{name: "big", region: "fsn1", status: "ready", vcpu: 16, memoryMB: 65536, diskGB: 24}, // 20 GiB usable disk
	})
	gs := map[string]any{"cpu": 1, "memory_gb": 2, "disk_gb": 10}
	with := func(node, name string) map[string]any {
		m := map[string]any{"node_id": ids[node], "name": name}
		for k, v := range gs {
			m[k] = v
		}
		return m
	}

	var placed []string
	for i := 1; i <= 3; i++ {
		r := b.place(tok, with("small", fmt.Sprintf("gs-%d", i)), 201)
		placed = append(placed, r.str("id"))
		if got := b.nodeReservation(ids["small"]); got != [4]int{1000 * i, 2048 * i, 10 * i, i} {
			t.Fatalf("after %d placements: aggregates %v", i, got)
		}
		free, why := b.freeOn(tok, "small", map[string]any{"cpu": 0.1, "memory_gb": 0.1, "disk_gb": 0.1})
		if why != nil || free["milli_cpu"] != float64(3900-1000*i) || free["memory_mib"] != float64(7680-2048*i) || free["disk_mib"] != float64((96-10*i)*1024) {
			t.Fatalf("after %d placements: suggest-fit free %v %v", i, free, why)
		}
	}

	// 900m and 1536 MiB left: the fourth is refused, naming both, and changes nothing.
	_, why := b.freeOn(tok, "small", gs)
	if fmt.Sprint(why) != "[insufficient_cpu insufficient_memory]" {
		t.Errorf("suggest-fit says %v", why)
	}
	before := b.snapshot()
	r := b.place(tok, with("small", "gs-4"), 409)
	if msg := r.errMsg(); !strings.Contains(msg, "node small cannot hold the instance") ||
		!strings.Contains(msg, "insufficient cpu: 900m free, the instance needs 1000m") ||
		!strings.Contains(msg, "insufficient memory: 1536 MiB free, the instance needs 2048 MiB") || strings.Contains(msg, "disk") {
		t.Errorf("refusal: %q", msg)
	}
	b.unchanged(before)
	if got := b.nodeReservation(ids["small"]); got != [4]int{3000, 6144, 30, 3} {
		t.Errorf("aggregates after the refusal %v", got)
	}

	// Something smaller still fits, exactly to the last millicore and MiB.
	b.place(tok, map[string]any{"node_id": ids["small"], "name": "tiny", "cpu": 0.9, "memory_gb": 1.5, "disk_gb": 66}, 201)
	b.place(tok, map[string]any{"node_id": ids["small"], "name": "crumb", "cpu": 0.001, "memory_gb": 0.001, "disk_gb": 1}, 409)

	// Disk runs out on the big node.
	b.place(tok, with("big", "big-1"), 201)
	b.place(tok, with("big", "big-2"), 201)
	r = b.place(tok, with("big", "big-3"), 409)
	if msg := r.errMsg(); !strings.Contains(msg, "insufficient disk: 0 GiB free, the instance needs 10 GiB") || strings.Contains(msg, "cpu") {
		t.Errorf("disk refusal: %q", msg)
	}

	// Removing one makes room again.
	b.expect(req{method: "DELETE", path: "/v1/instances/" + placed[0], token: tok}, 204)
	if free, why := b.freeOn(tok, "small", gs); why != nil || free["milli_cpu"] != float64(1000) {
		t.Errorf("after delete: free %v, rejected %v", free, why)
	}
	b.place(tok, with("small", "gs-4"), 201)

	t.Run("move", func(t *testing.T) {
		// small is full; big has cpu and memory but no disk left.
		before := b.snapshot()
		r := b.expect(req{method: "POST", path: "/v1/instances/" + placed[1] + "/move", token: tok, body: map[string]any{"node_id": ids["big"]}}, 409)
		if !strings.Contains(r.errMsg(), "node big cannot hold the instance: insufficient disk") {
			t.Errorf("move refusal %q", r.errMsg())
		}
		b.unchanged(before)
		big := b.expect(req{method: "GET", path: "/v1/instances?node=" + ids["big"], token: tok}, 200).list()
		b.expect(req{method: "DELETE", path: "/v1/instances/" + big[0]["id"].(string), token: tok}, 204)

		r = b.expect(req{method: "POST", path: "/v1/instances/" + placed[1] + "/move", token: tok, body: map[string]any{"node_id": ids["big"]}}, 200)
		if r.str("node_id") != ids["big"] || r.str("node_name") != "big" || r.str("name") != "gs-2" {
			t.Errorf("moved: %s", r.Raw)
		}
		if got := b.nodeReservation(ids["big"]); got != [4]int{2000, 4096, 20, 2} {
			t.Errorf("big after the move %v", got)
		}
		if got := b.nodeReservation(ids["small"]); got != [4]int{2900, 5632, 86, 3} {
			t.Errorf("small after the move %v", got)
		}
		// Moving to the node it is on changes nothing.
		b.expect(req{method: "POST", path: "/v1/instances/" + placed[1] + "/move", token: tok, body: map[string]any{"node_id": ids["big"]}}, 200)
		if got := b.nodeReservation(ids["big"]); got != [4]int{2000, 4096, 20, 2} {
			t.Errorf("big after a move in place %v", got)
		}
	})
}

// TestInstancesConcurrentPlacements: 20 placements at once on each of three
// nodes that fit 10: exactly 10 succeed per node and each node is exactly
// full.
func TestInstancesConcurrentPlacements(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a := b.bootstrap("ops@example.com")
	tok := b.apiToken(a, "nodes:read", "nodes:write")
	// 11 cores − 100m = 10.9 cores usable: ten 1-core instances.
	ten := fitNode{region: "fsn1", status: "ready", vcpu: 11, memoryMB: 65536, diskGB: 500}
	nodes := []fitNode{{name: "roomy", region: "fsn1", status: "ready", vcpu: 64, memoryMB: 262144, diskGB: 2000}}
	for _, name := range []string{"ten-1", "ten-2", "ten-3"} {
		n := ten
		n.name = name
		nodes = append(nodes, n)
	}
	ids := b.insertNodes(a.orgID, nodes)

	// race sends n placements released at once and counts the statuses.
	race := func(n int, body func(i int) map[string]any) map[int]int {
		var mu sync.Mutex
		statuses := map[int]int{}
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				r, err := b.try(req{method: "POST", path: "/v1/instances", token: tok, body: body(i), timeout: 30 * time.Second})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				statuses[r.Status]++
				mu.Unlock()
			})
		}
		close(start)
		wg.Wait()
		return statuses
	}

	statuses := race(60, func(i int) map[string]any {
		return map[string]any{"node_id": ids[fmt.Sprintf("ten-%d", i%3+1)], "name": fmt.Sprintf("gs-%d", i), "cpu": 1, "memory_gb": 1, "disk_gb": 1}
	})
	if statuses[201] != 30 || statuses[409] != 30 {
		t.Errorf("statuses %v, want 30 × 201 and 30 × 409", statuses)
	}
	for _, name := range []string{"ten-1", "ten-2", "ten-3"} {
		if got := b.nodeReservation(ids[name]); got != [4]int{10000, 10240, 10, 10} {
			t.Errorf("%s aggregates %v", name, got)
		}
		if n := b.count("SELECT count(*) FROM instances WHERE node_id = $1", ids[name]); n != 10 {
			t.Errorf("%s: %d instance rows", name, n)
		}
	}

	// The same name from 10 placements at once: one wins.
	statuses = race(10, func(int) map[string]any {
		return map[string]any{"node_id": ids["roomy"], "name": "same", "cpu": 1, "memory_gb": 1, "disk_gb": 1}
	})
	if statuses[201] != 1 || statuses[409] != 9 {
		t.Errorf("same name: statuses %v", statuses)
	}
	if got := b.nodeReservation(ids["roomy"]); got != [4]int{1000, 1024, 1, 1} {
		t.Errorf("roomy aggregates %v", got)
	}
}

func TestInstancesTenantIsolation(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a := b.bootstrap("ops@example.com")
	other := b.register("rival@example.com")
	tok := b.apiToken(a, "nodes:read", "nodes:write")
	otherTok := b.apiToken(other, "nodes:read", "nodes:write")
	mine := b.insertNodes(a.orgID, []fitNode{{name: "fsn-a", region: "fsn1", status: "ready", vcpu: 8, memoryMB: 16384, diskGB: 160}})
	theirs := b.insertNodes(other.orgID, []fitNode{{name: "rival", region: "fsn1", status: "ready", vcpu: 8, memoryMB: 16384, diskGB: 160}})
	in := b.place(tok, map[string]any{"node_id": mine["fsn-a"], "name": "gs-1", "cpu": 1, "memory_gb": 1, "disk_gb": 1}, 201)
	id := in.str("id")

	before := b.snapshot()
	// The other organization neither sees nor touches it, nor places on the node.
	if r := b.expect(req{method: "GET", path: "/v1/instances", token: otherTok}, 200); len(r.list()) != 0 {
		t.Errorf("list shows %s", r.Raw)
	}
	b.expect(req{method: "GET", path: "/v1/instances?node=" + mine["fsn-a"], token: otherTok}, 200)
	b.expect(req{method: "GET", path: "/v1/instances/" + id, token: otherTok}, 404)
	b.expect(req{method: "DELETE", path: "/v1/instances/" + id, token: otherTok}, 404)
	b.expect(req{method: "POST", path: "/v1/instances/" + id + "/move", token: otherTok, body: map[string]any{"node_id": theirs["rival"]}}, 404)
	b.place(otherTok, map[string]any{"node_id": mine["fsn-a"], "name": "gs-2", "cpu": 1, "memory_gb": 1, "disk_gb": 1}, 404)
	// Nor can its instance be moved onto their node, or placed there.
	b.expect(req{method: "POST", path: "/v1/instances/" + id + "/move", token: tok, body: map[string]any{"node_id": theirs["rival"]}}, 404)
	b.place(tok, map[string]any{"node_id": theirs["rival"], "name": "gs-3", "cpu": 1, "memory_gb": 1, "disk_gb": 1}, 404)
	// Claiming the organization by header is 404 too.
	b.expect(req{method: "GET", path: "/v1/instances/" + id, token: other.access, header: inOrg(a.orgID)}, 404)
	b.unchanged(before)

	// Names are per organization: the other one may use the same name.
	b.place(otherTok, map[string]any{"node_id": theirs["rival"], "name": "gs-1", "cpu": 1, "memory_gb": 1, "disk_gb": 1}, 201)
	if r := b.expect(req{method: "GET", path: "/v1/instances", token: tok}, 200); len(r.list()) != 1 || r.list()[0]["id"] != id {
		t.Errorf("own list %s", r.Raw)
	}
}

func TestInstancesPermissions(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a := b.bootstrap("ops@example.com")
	ids := b.insertNodes(a.orgID, []fitNode{{name: "fsn-a", region: "fsn1", status: "ready", vcpu: 8, memoryMB: 16384, diskGB: 160}})
	writer := b.apiToken(a, "nodes:read", "nodes:write")
	reader := b.apiToken(a, "nodes:read")
	planner := b.apiToken(a, "planner:read")
	viewer := b.join(a, a.orgID, "viewer@example.com", "viewer")
	member := b.join(a, a.orgID, "member@example.com", "member")
	id := b.place(writer, map[string]any{"node_id": ids["fsn-a"], "name": "gs-1", "cpu": 1, "memory_gb": 1, "disk_gb": 1}, 201).str("id")
	place := map[string]any{"node_id": ids["fsn-a"], "name": "gs-2", "cpu": 1, "memory_gb": 1, "disk_gb": 1}
	move := map[string]any{"node_id": ids["fsn-a"]}

	type call struct {
		method, path string
		body         any
		write        bool
	}
	calls := []call{
		{"GET", "/v1/instances", nil, false},
		{"GET", "/v1/instances/" + id, nil, false},
		{"POST", "/v1/instances", place, true},
		{"POST", "/v1/instances/" + id + "/move", move, true},
		{"DELETE", "/v1/instances/" + id, nil, true},
	}
	for _, c := range calls {
		t.Run(c.method+" "+c.path, func(t *testing.T) {
			before := b.snapshot()
			b.expect(req{method: c.method, path: c.path, body: c.body}, 401)
			r := b.expect(req{method: c.method, path: c.path, token: planner, body: c.body}, 403)
			if want := "nodes:"; !strings.Contains(r.errMsg(), want) {
				t.Errorf("403 %q", r.errMsg())
			}
			if c.write {
				r := b.expect(req{method: c.method, path: c.path, token: reader, body: c.body}, 403)
				if !strings.Contains(r.errMsg(), "nodes:write") {
					t.Errorf("403 %q", r.errMsg())
				}
				b.expect(req{method: c.method, path: c.path, token: viewer.access, header: inOrg(a.orgID), body: c.body}, 403)
			} else {
				b.expect(req{method: c.method, path: c.path, token: reader}, 200)
				b.expect(req{method: c.method, path: c.path, token: viewer.access, header: inOrg(a.orgID)}, 200)
			}
			b.unchanged(before)
		})
	}
	// nodes:write alone places and moves (the answer is read in the same transaction).
	writeOnly := b.apiToken(a, "nodes:write")
	r := b.place(writeOnly, map[string]any{"node_id": ids["fsn-a"], "name": "gs-w", "cpu": 1, "memory_gb": 1, "disk_gb": 1}, 201)
	if r.str("name") != "gs-w" || r.str("node_name") != "fsn-a" {
		t.Errorf("write-only placement: %s", r.Raw)
	}
	b.expect(req{method: "POST", path: "/v1/instances/" + r.str("id") + "/move", token: writeOnly, body: move}, 200)
	b.expect(req{method: "GET", path: "/v1/instances/" + r.str("id"), token: writeOnly}, 403)
	// A member holds nodes:write.
	b.expect(req{method: "POST", path: "/v1/instances", token: member.access, header: inOrg(a.orgID), body: place}, 201)
	b.expect(req{method: "DELETE", path: "/v1/instances/" + id, token: member.access, header: inOrg(a.orgID)}, 204)
}
