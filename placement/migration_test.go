package placement

import (
	"context"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/shardform/shardform/domain"
	"github.com/shardform/shardform/planner"
	"github.com/shardform/shardform/store"
	"github.com/shardform/shardform/store/storetest"
)

func TestTargetsChoose(t *testing.T) {
	t.Parallel()
	capacity := planner.Resources{MilliCPU: 4000, MemoryMiB: 8192, DiskMiB: 100 * 1024}
	node := func(name, status string, reservedMiB int64) planner.NodeCapacity {
		n := planner.NodeCapacity{ID: name, Name: name, Region: "r", Capacity: capacity, Reserved: planner.Resources{MemoryMiB: reservedMiB}}
		setStatus(&n, status)
		return n
	}
	need := planner.Resources{MilliCPU: 500, MemoryMiB: 2048, DiskMiB: 1024}
	tests := []struct {
		name     string
		nodes    []planner.NodeCapacity
		strategy planner.Strategy
		want     string // the chosen node, or a part of the reason
	}{
		{"binpack: the busiest that fits", []planner.NodeCapacity{node("empty", "ready", 0), node("busy", "ready", 4096), node("full", "ready", 7000)}, planner.StrategyBinpack, "busy"},
		{"spread: the emptiest", []planner.NodeCapacity{node("busy", "ready", 4096), node("empty", "ready", 0)}, planner.StrategySpread, "empty"},
		{"only ready nodes", []planner.NodeCapacity{node("c", "cordoned", 0), node("m", "maintenance", 0), node("s", "stopped", 0), node("ok", "ready", 6000)}, planner.StrategyBinpack, "ok"},
		{"none: the reasons counted", []planner.NodeCapacity{node("c", "cordoned", 0), node("m", "maintenance", 0), node("s", "stopped", 0), node("full", "ready", 7000)}, planner.StrategyBinpack,
			"(4 nodes: cordoned 1, insufficient_memory 1, not_ready 1, stopped 1)"},
		{"no other node", nil, planner.StrategyBinpack, "no other node of provider p in region r"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tg := &targets{provider: "p", region: "r", nodes: tt.nodes, index: map[string]int{}}
			for i, n := range tt.nodes {
				tg.index[n.ID] = i
			}
			i, reason := tg.choose(need, tt.strategy)
			got := reason
			if i >= 0 {
				got = tt.nodes[i].Name
			}
			if !strings.Contains(got, tt.want) {
				t.Errorf("chose %q, want %q", got, tt.want)
			}
		})
	}
	// A zero need (written with SQL) still gets a node.
	tg := &targets{nodes: []planner.NodeCapacity{node("ok", "ready", 0)}, index: map[string]int{"ok": 0}}
	if i, reason := tg.choose(planner.Resources{}, planner.StrategyBinpack); i != 0 {
		t.Errorf("zero need: %d %q", i, reason)
	}
}

// TestRunDrain runs a drain's job directly: instances deleted or moved
// elsewhere after the drain was asked for are skipped, one that fits
// nowhere fails with its reason, the rest move; run again, the job does
// nothing.
func TestRunDrain(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := store.NewStore(storetest.NewPool(t))
	s := New(st, Config{})
	client, err := river.NewClient(riverpgxv5.New(st.Pool), &river.Config{}) // inserts only
	if err != nil {
		t.Fatal(err)
	}
	s.UseQueue(client)
	var org uuid.UUID
	if err := st.Pool.QueryRow(ctx, "INSERT INTO organizations (name) VALUES ('o') RETURNING id").Scan(&org); err != nil {
		t.Fatal(err)
	}
	p := &domain.Principal{OrgID: org, HasOrg: true, Role: domain.RoleMember, Perms: domain.NewPermissionSet(domain.RolePermissions(domain.RoleMember))}
	node := func(name, region string, memMB int) uuid.UUID {
		var id uuid.UUID
		if err := st.Pool.QueryRow(ctx, `INSERT INTO nodes (organization_id, name, provider, region, instance_type, vcpu, memory_mb, disk_gb)
			VALUES ($1, $2, 'local', $3, 'local-small', 8, $4, 200) RETURNING id`, org, name, region, memMB).Scan(&id); err != nil {
			t.Fatal(err)
		}
		return id
	}
	// dst has 4 GiB free after the overhead: the 3 GiB instance goes, the
	// second 3 GiB one then fits nowhere.
	src, dst, elsewhere := node("src", "r1", 16384), node("dst", "r1", 4096+512), node("elsewhere", "r2", 16384)
	place := func(name string, memGB float64) uuid.UUID {
		in, err := s.Create(ctx, p, CreateRequest{NodeID: src.String(), Name: name, CPU: ptr(1), MemoryGB: ptr(memGB), DiskGB: ptr(1)})
		if err != nil {
			t.Fatal(err)
		}
		return in.ID
	}
	place("big-1", 3)
	place("big-2", 3)
	gone := place("gone", 1)
	moved := place("moved", 0.5)

	m, err := s.Drain(ctx, p, src, DrainRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if m.Status != MigrationQueued || m.MovesLeft != 4 {
		t.Fatalf("drain: %+v", m)
	}
	if err := s.Delete(ctx, p, gone); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Move(ctx, p, moved, MoveRequest{NodeID: elsewhere.String()}); err != nil {
		t.Fatal(err)
	}
	args := DrainArgs{OrganizationID: org, MigrationID: m.ID}
	if err := s.RunDrain(ctx, args); err != nil {
		t.Fatal(err)
	}
	m, err = s.GetMigration(ctx, p, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"big-1": MoveMoved, "big-2": MoveFailed, "gone": MoveSkipped, "moved": MoveSkipped}
	for _, mv := range m.Moves {
		if mv.Status != want[mv.InstanceName] {
			t.Errorf("%s: %s (%s), want %s", mv.InstanceName, mv.Status, mv.Reason, want[mv.InstanceName])
		}
		if mv.Status == MoveMoved && (mv.ToNodeID == nil || *mv.ToNodeID != dst || mv.ToNodeName != "dst") {
			t.Errorf("%s went to %v", mv.InstanceName, mv.ToNodeID)
		}
		if mv.Status != MoveMoved && mv.Reason == "" {
			t.Errorf("%s has no reason", mv.InstanceName)
		}
	}
	if m.Status != MigrationPartial || m.MovesDone != 1 || m.MovesFailed != 1 || m.MovesSkipped != 2 || len(m.Failures) != 1 ||
		!strings.Contains(m.Failures[0].Reason, "insufficient_memory 1") {
		t.Errorf("migration %+v", m)
	}
	// Again (River runs a job again after its worker died): nothing more.
	if err := s.RunDrain(ctx, args); err != nil {
		t.Fatal(err)
	}
	var onDst int
	if err := st.Pool.QueryRow(ctx, "SELECT count(*) FROM instances WHERE node_id = $1", dst).Scan(&onDst); err != nil || onDst != 1 {
		t.Errorf("%d instances on dst (%v)", onDst, err)
	}
	// A job that gave up ends its drain failed; an ended one stays as it is.
	m2, err := s.Drain(ctx, p, src, DrainRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.FailDrain(ctx, DrainArgs{OrganizationID: org, MigrationID: m2.ID}, context.DeadlineExceeded); err != nil {
		t.Fatal(err)
	}
	if m2, err = s.GetMigration(ctx, p, m2.ID); err != nil || m2.Status != MigrationFailed || m2.Error != context.DeadlineExceeded.Error() || m2.MovesCancelled != 1 {
		t.Errorf("failed drain %+v (%v)", m2, err)
	}
	if err := s.FailDrain(ctx, args, context.Canceled); err != nil {
		t.Fatal(err)
	}
	if m, err = s.GetMigration(ctx, p, m.ID); err != nil || m.Status != MigrationPartial {
		t.Errorf("ended drain became %s (%v)", m.Status, err)
	}
}
