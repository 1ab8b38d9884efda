package placement

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/shardform/shardform/domain"
	"github.com/shardform/shardform/planner"
	"github.com/shardform/shardform/store"
	"github.com/shardform/shardform/store/storetest"
)

func ptr(v float64) *float64 { return &v }

func TestRequirement(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		req     CreateRequest
		want    planner.Resources
		players int
		field   string // of the validation error; "" for none
	}{
		{"by hand", CreateRequest{CPU: ptr(2), MemoryGB: ptr(6), DiskGB: ptr(10)}, planner.Resources{MilliCPU: 2000, MemoryMiB: 6144, DiskMiB: 10240}, 0, ""},
		{"fractions round up; disk to whole GiB", CreateRequest{CPU: ptr(0.25), MemoryGB: ptr(0.5), DiskGB: ptr(0.1)}, planner.Resources{MilliCPU: 250, MemoryMiB: 512, DiskMiB: 1024}, 0, ""},
		{"template default players", CreateRequest{Template: "valheim"}, planner.Resources{MilliCPU: 2000, MemoryMiB: 3584 + 256*10, DiskMiB: 2048}, 10, ""},
		{"template with players", CreateRequest{Template: "valheim", Players: 4}, planner.Resources{MilliCPU: 2000, MemoryMiB: 3584 + 256*4, DiskMiB: 2048}, 4, ""},
		{"template with overrides", CreateRequest{Template: "valheim", Players: 4, CPU: ptr(4), DiskGB: ptr(30)}, planner.Resources{MilliCPU: 4000, MemoryMiB: 3584 + 256*4, DiskMiB: 30 * 1024}, 4, ""},
		{"no cpu", CreateRequest{MemoryGB: ptr(1), DiskGB: ptr(1)}, planner.Resources{}, 0, "cpu"},
		{"no memory", CreateRequest{CPU: ptr(1), DiskGB: ptr(1)}, planner.Resources{}, 0, "memory_gb"},
		{"no disk", CreateRequest{CPU: ptr(1), MemoryGB: ptr(1)}, planner.Resources{}, 0, "disk_gb"},
		{"zero cpu", CreateRequest{CPU: ptr(0), MemoryGB: ptr(1), DiskGB: ptr(1)}, planner.Resources{}, 0, "cpu"},
		{"negative memory", CreateRequest{CPU: ptr(1), MemoryGB: ptr(-1), DiskGB: ptr(1)}, planner.Resources{}, 0, "memory_gb"},
		{"zero disk", CreateRequest{CPU: ptr(1), MemoryGB: ptr(1), DiskGB: ptr(0)}, planner.Resources{}, 0, "disk_gb"},
		{"zero override", CreateRequest{Template: "valheim", MemoryGB: ptr(0)}, planner.Resources{}, 0, "memory_gb"},
		{"players without template", CreateRequest{Players: 3, CPU: ptr(1), MemoryGB: ptr(1), DiskGB: ptr(1)}, planner.Resources{}, 0, "players"},
		{"unknown template", CreateRequest{Template: "doom"}, planner.Resources{}, 0, "template"},
		{"too many players", CreateRequest{Template: "valheim", Players: 64}, planner.Resources{}, 0, "players"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, players, err := requirement(tt.req)
			if tt.field != "" {
				var verr *domain.ValidationError
				if !errors.As(err, &verr) || verr.Field != tt.field {
					t.Fatalf("error %v, want a validation error on %s", err, tt.field)
				}
				return
			}
			if err != nil || got != tt.want || players != tt.players {
				t.Errorf("got %v players %d err %v, want %v players %d", got, players, err, tt.want, tt.players)
			}
		})
	}
}

func TestCheckName(t *testing.T) {
	t.Parallel()
	for name, ok := range map[string]bool{
		"gs-1": true, "a": true, "0": true, strings.Repeat("a", 63): true, "valheim-eu-01": true,
		"": false, "-a": false, "a-": false, "A": false, "a.b": false, "a_b": false, "a b": false, strings.Repeat("a", 64): false, "é": false,
	} {
		err := checkName(name)
		var verr *domain.ValidationError
		if ok != (err == nil) || (err != nil && (!errors.As(err, &verr) || verr.Field != "name")) {
			t.Errorf("checkName(%q) = %v", name, err)
		}
	}
}

func TestShortfall(t *testing.T) {
	t.Parallel()
	free := planner.Resources{MilliCPU: 900, MemoryMiB: 1536, DiskMiB: 10 * 1024}
	tests := []struct {
		need planner.Resources
		want []string
	}{
		{planner.Resources{MilliCPU: 900, MemoryMiB: 1536, DiskMiB: 10 * 1024}, nil},
		{planner.Resources{MilliCPU: 1000, MemoryMiB: 1024, DiskMiB: 1024}, []string{"insufficient cpu: 900m free, the instance needs 1000m"}},
		{planner.Resources{MilliCPU: 100, MemoryMiB: 2048, DiskMiB: 20 * 1024}, []string{
			"insufficient memory: 1536 MiB free, the instance needs 2048 MiB", "insufficient disk: 10 GiB free, the instance needs 20 GiB"}},
	}
	for _, tt := range tests {
		if got := Shortfall(free, tt.need); fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("Shortfall(%v) = %q, want %q", tt.need, got, tt.want)
		}
	}
	// An overcommitted node (reservations written with SQL) reports 0 free.
	if got := Shortfall(planner.Resources{MilliCPU: -500}, planner.Resources{MilliCPU: 1}); len(got) != 1 || !strings.Contains(got[0], "0m free") {
		t.Errorf("overcommitted: %q", got)
	}
}

// TestMovesAndNodeDeletion moves instances back and forth between two nodes
// from many goroutines while another node's instances are deleted with it:
// no deadlock, and the aggregates stay exact.
func TestMovesAndNodeDeletion(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := store.NewStore(storetest.NewPool(t))
	s := New(st, Config{})
	var org uuid.UUID
	if err := st.Pool.QueryRow(ctx, "INSERT INTO organizations (name) VALUES ('o') RETURNING id").Scan(&org); err != nil {
		t.Fatal(err)
	}
	p := &domain.Principal{OrgID: org, HasOrg: true, Role: domain.RoleMember, Perms: domain.NewPermissionSet(domain.RolePermissions(domain.RoleMember))}
	node := func(name string) uuid.UUID {
		var id uuid.UUID
		if err := st.Pool.QueryRow(ctx, `INSERT INTO nodes (organization_id, name, provider, region, instance_type, vcpu, memory_mb, disk_gb)
			VALUES ($1, $2, 'local', 'local', 'local-small', 64, 262144, 2000) RETURNING id`, org, name).Scan(&id); err != nil {
			t.Fatal(err)
		}
		return id
	}
	a, b, doomed := node("a"), node("b"), node("doomed")
	var ids []uuid.UUID
	for i := range 8 {
		on := a
		if i%2 == 1 {
			on = b
		}
		if i >= 6 {
			on = doomed
		}
		in, err := s.Create(ctx, p, CreateRequest{NodeID: on.String(), Name: fmt.Sprintf("gs-%d", i), CPU: ptr(1), MemoryGB: ptr(1), DiskGB: ptr(1)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, in.ID)
	}

	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for w := range 6 {
		wg.Go(func() {
			for i := range 10 {
				to := a
				if (w+i)%2 == 0 {
					to = b
				}
				if _, err := s.Move(ctx, p, ids[w], MoveRequest{NodeID: to.String()}); err != nil {
					errs <- err
				}
			}
		})
	}
	for _, id := range ids[6:] { // off the doomed node, racing its deletion
		wg.Go(func() {
			for i := range 10 {
				to := []uuid.UUID{a, b, doomed}[i%3]
				if _, err := s.Move(ctx, p, id, MoveRequest{NodeID: to.String()}); err != nil && !errors.Is(err, domain.ErrNotFound) {
					errs <- err
				}
			}
		})
	}
	wg.Go(func() {
		if _, err := st.Pool.Exec(ctx, "DELETE FROM nodes WHERE id = $1", doomed); err != nil {
			errs <- err
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	var bad int
	if err := st.Pool.QueryRow(ctx, `SELECT count(*) FROM nodes n WHERE organization_id = $1 AND (n.instance_count, n.reserved_cpu_millis) <>
		(SELECT count(*)::int, coalesce(sum(cpu_millis), 0)::bigint FROM instances i WHERE i.node_id = n.id)`, org).Scan(&bad); err != nil {
		t.Fatal(err)
	}
	if bad != 0 {
		t.Errorf("%d nodes with wrong aggregates", bad)
	}
	list, total, err := s.List(ctx, p, Filter{}, domain.Page{Page: 1, Limit: 100})
	if n := len(list); err != nil || total != int64(n) || n < 6 || n > 8 {
		t.Errorf("list: %d of %d, %v", len(list), total, err)
	}
}
