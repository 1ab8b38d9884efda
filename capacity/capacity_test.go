package capacity

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/shardform/shardform/domain"
	"github.com/shardform/shardform/planner"
	"github.com/shardform/shardform/store"
	"github.com/shardform/shardform/store/storetest"
)

func TestPrice(t *testing.T) {
	t.Parallel()
	tests := []struct {
		raw  string
		want *planner.Money
		err  bool
	}{
		{``, nil, false},
		{`null`, nil, false},
		{`"49.90"`, &planner.Money{Nanos: 49_900_000_000, Currency: "EUR"}, false},
		{`49.9`, &planner.Money{Nanos: 49_900_000_000, Currency: "EUR"}, false},
		{`0.1`, &planner.Money{Nanos: 100_000_000, Currency: "EUR"}, false}, // exact: not through float64
		{`{"amount": "12.5", "currency": "USD"}`, &planner.Money{Nanos: 12_500_000_000, Currency: "USD"}, false},
		{`1e3`, nil, true},
		{`"cheap"`, nil, true},
		{`true`, nil, true},
		{`{"amount": 12}`, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			got, err := price(json.RawMessage(tt.raw), "EUR")
			var verr *domain.ValidationError
			if tt.err {
				if !errors.As(err, &verr) || verr.Field != "max_monthly_price" {
					t.Fatalf("err %v, want a validation error on max_monthly_price", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestCountReasons(t *testing.T) {
	t.Parallel()
	got := countReasons([]planner.NodeRejection{
		{Reasons: planner.RejectCordoned | planner.RejectInsufficientMemory},
		{Reasons: planner.RejectInsufficientMemory},
		{Reasons: planner.RejectInsufficientDisk | planner.RejectNotReady},
	})
	want := map[string]int{"cordoned": 1, "insufficient_memory": 2, "insufficient_disk": 1, "not_ready": 1}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

// bundle is one test's service on its own database, with an organization.
type bundle struct {
	svc *Service
	st  *store.Store
	org uuid.UUID
	p   *domain.Principal
}

func setup(t *testing.T) *bundle {
	t.Helper()
	pool := storetest.NewPool(t)
	st := store.NewStore(pool)
	svc, err := New(st, Config{})
	if err != nil {
		t.Fatal(err)
	}
	b := &bundle{svc: svc, st: st}
	if err := pool.QueryRow(t.Context(), "INSERT INTO organizations (name) VALUES ('acme') RETURNING id").Scan(&b.org); err != nil {
		t.Fatal(err)
	}
	b.p = &domain.Principal{UserID: uuid.New(), OrgID: b.org, HasOrg: true, Role: domain.RoleViewer,
		Perms: domain.NewPermissionSet(domain.RolePermissions(domain.RoleViewer))}
	return b
}

func (b *bundle) nodes(t *testing.T, n int) []uuid.UUID {
	t.Helper()
	rows, err := b.st.Pool.Query(t.Context(), `INSERT INTO nodes (organization_id, name, provider, region, instance_type, vcpu, memory_mb, disk_gb)
		SELECT $1, 'node-' || lpad(g::text, 4, '0'), 'hetzner', 'fsn1', 'cx53', 16, 32768, 320 FROM generate_series(1, $2::int) g
		RETURNING id`, b.org, n)
	if err != nil {
		t.Fatal(err)
	}
	var ids []uuid.UUID
	for rows.Next() {
		var id uuid.UUID
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return ids
}

// checkAggregates compares every node's aggregate with the sum of its
// instance rows.
func (b *bundle) checkAggregates(t *testing.T) {
	t.Helper()
	var bad int
	err := b.st.Pool.QueryRow(t.Context(), `SELECT count(*) FROM nodes n LEFT JOIN LATERAL (
			SELECT coalesce(sum(cpu_millis), 0) AS cpu, coalesce(sum(memory_mb), 0) AS mem, coalesce(sum(disk_gb), 0) AS disk, count(*) AS cnt
			FROM instances i WHERE i.node_id = n.id) s ON true
		WHERE n.reserved_cpu_millis <> s.cpu OR n.reserved_memory_mb <> s.mem OR n.reserved_disk_gb <> s.disk OR n.instance_count <> s.cnt`).Scan(&bad)
	if err != nil {
		t.Fatal(err)
	}
	if bad != 0 {
		t.Errorf("%d nodes' aggregates differ from their instances", bad)
	}
}

// TestReservationsStayExact runs concurrent inserts, moves, resizes and
// deletes of instances and checks that every node's aggregate equals the
// sum of its instances.
func TestReservationsStayExact(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ids := b.nodes(t, 12)
	ctx := t.Context()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for i := range 60 {
				node := ids[rng.IntN(len(ids))]
				var err error
				switch rng.IntN(5) {
				case 0, 1: // insert a few at once
					_, err = b.st.Pool.Exec(ctx, `INSERT INTO instances (organization_id, node_id, name, cpu_millis, memory_mb, disk_gb)
						SELECT $1, $2, 'w' || $3::int || '-' || $4::int || '-' || g, 250 * g, 512 * g, 5 * g FROM generate_series(1, 3) g`,
						b.org, node, w, i)
				case 2: // move some
					_, err = b.st.Pool.Exec(ctx, `UPDATE instances SET node_id = $1 WHERE id IN (SELECT id FROM instances WHERE organization_id = $2 ORDER BY random() LIMIT 4)`, node, b.org)
				case 3: // resize some
					_, err = b.st.Pool.Exec(ctx, `UPDATE instances SET memory_mb = memory_mb + 100, cpu_millis = cpu_millis + 1 WHERE id IN (SELECT id FROM instances WHERE organization_id = $1 ORDER BY random() LIMIT 3)`, b.org)
				case 4: // delete some
					_, err = b.st.Pool.Exec(ctx, `DELETE FROM instances WHERE id IN (SELECT id FROM instances WHERE organization_id = $1 ORDER BY random() LIMIT 2)`, b.org)
				}
				if err != nil && !strings.Contains(err.Error(), "deadlock") { // a deadlock rolls back the statement: still exact
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	b.checkAggregates(t)

	// Deleting a node removes its instances (and nothing else goes wrong).
	if _, err := b.st.Pool.Exec(ctx, "DELETE FROM nodes WHERE id = $1", ids[0]); err != nil {
		t.Fatal(err)
	}
	b.checkAggregates(t)
	var left int
	if err := b.st.Pool.QueryRow(ctx, "SELECT count(*) FROM instances WHERE node_id = $1", ids[0]).Scan(&left); err != nil || left != 0 {
		t.Errorf("%d instances left on a deleted node (%v)", left, err)
	}
}

func TestInstancesStayInTheirOrganization(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ids := b.nodes(t, 1)
	var other uuid.UUID
	if err := b.st.Pool.QueryRow(t.Context(), "INSERT INTO organizations (name) VALUES ('rival') RETURNING id").Scan(&other); err != nil {
		t.Fatal(err)
	}
	_, err := b.st.Pool.Exec(t.Context(), `INSERT INTO instances (organization_id, node_id, name, cpu_millis, memory_mb, disk_gb) VALUES ($1, $2, 'x', 1, 1, 1)`, other, ids[0])
	if err == nil || !strings.Contains(err.Error(), "foreign key") {
		t.Fatalf("an instance of another organization was placed on the node: %v", err)
	}
}

func TestSuggestFitService(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.nodes(t, 30)
	ctx := context.Background()
	// Node i holds i instances of 1 core, 1 GiB, 10 GB.
	if _, err := b.st.Pool.Exec(ctx, `INSERT INTO instances (organization_id, node_id, name, cpu_millis, memory_mb, disk_gb)
		SELECT n.organization_id, n.id, n.name || '-gs-' || g, 1000, 1024, 10 FROM nodes n, generate_series(1, 30) g
		WHERE g <= substr(n.name, 6)::int % 16`); err != nil {
		t.Fatal(err)
	}
	one := 1.0
	res, err := b.svc.SuggestFit(ctx, b.p, FitRequest{CPU: &one, MemoryGB: &one, DiskGB: &one})
	if err != nil {
		t.Fatal(err)
	}
	// node-0015 holds 15 instances and has 0.9 cores left: rejected.
	if res.Nodes != 30 || res.RejectedTotal != 1 || res.RejectedByReason["insufficient_cpu"] != 1 || res.FitsTotal != 29 || len(res.Fits) != DefaultLimit {
		t.Fatalf("nodes %d, fits %d (%d listed), rejected %d %v", res.Nodes, res.FitsTotal, len(res.Fits), res.RejectedTotal, res.RejectedByReason)
	}
	if res.Fits[0].Name != "node-0014" || res.Fits[1].Name != "node-0030" || res.Rejected[0].Name != "node-0015" {
		t.Errorf("binpack picks %s then %s, rejects %s; want the two nodes holding 14 instances, by name, and node-0015", res.Fits[0].Name, res.Fits[1].Name, res.Rejected[0].Name)
	}
	viewerWithout := &domain.Principal{OrgID: b.org, HasOrg: true, Perms: domain.NewPermissionSet(nil)}
	if _, err := b.svc.SuggestFit(ctx, viewerWithout, FitRequest{CPU: &one, MemoryGB: &one, DiskGB: &one}); !errors.Is(err, domain.ErrForbidden) {
		t.Errorf("without planner:read: %v", err)
	}
}

// TestSuggestFitSeesEveryChange: the in-memory node cache never answers
// with nodes older than the last committed change (new and removed nodes,
// status, labels, reservations).
func TestSuggestFitSeesEveryChange(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	ids := b.nodes(t, 3)
	cpu, mem, disk := 8.0, 1.0, 1.0 // half a node's cores
	fit := func() FitResult {
		t.Helper()
		res, err := b.svc.SuggestFit(ctx, b.p, FitRequest{CPU: &cpu, MemoryGB: &mem, DiskGB: &disk, Labels: map[string]string{"game": "rust"}})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := b.st.Pool.Exec(ctx, sql, args...); err != nil {
			t.Fatal(err)
		}
	}
	steps := []struct {
		name       string
		change     func()
		nodes      int
		fits       int
		reasonWant string // a reason some node is rejected for, "" for none
	}{
		{"no labels yet", func() {}, 3, 0, "label_mismatch"},
		{"labels set", func() { exec(`UPDATE nodes SET labels = '{"game": "rust"}'`) }, 3, 3, ""},
		{"one cordoned", func() { exec(`UPDATE nodes SET status = 'cordoned' WHERE id = $1`, ids[0]) }, 3, 2, "cordoned"},
		{"one stopped", func() { exec(`UPDATE nodes SET power_state = 'stopped' WHERE id = $1`, ids[1]) }, 3, 1, "stopped"},
		{"started again", func() { exec(`UPDATE nodes SET power_state = 'running' WHERE id = $1`, ids[1]) }, 3, 2, "cordoned"},
		{"one filled by instances", func() {
			exec(`INSERT INTO instances (organization_id, node_id, name, cpu_millis, memory_mb, disk_gb) VALUES ($1, $2, 'big', 8000, 1024, 10)`, b.org, ids[1])
		}, 3, 1, "insufficient_cpu"},
		{"its instance removed", func() { exec(`DELETE FROM instances WHERE node_id = $1`, ids[1]) }, 3, 2, "cordoned"},
		{"a downsize to 4 cores pending", func() {
			exec(`UPDATE nodes SET desired_instance_type = 'cx23', desired_vcpu = 4, desired_memory_mb = memory_mb, desired_disk_gb = disk_gb WHERE id = $1`, ids[1])
		}, 3, 1, "insufficient_cpu"},
		{"the downsize asked back", func() {
			exec(`UPDATE nodes SET desired_instance_type = NULL, desired_vcpu = NULL, desired_memory_mb = NULL, desired_disk_gb = NULL WHERE id = $1`, ids[1])
		}, 3, 2, "cordoned"},
		{"a node deleted", func() { exec(`DELETE FROM nodes WHERE id = $1`, ids[2]) }, 2, 1, "cordoned"},
		{"a node added", func() {
			exec(`INSERT INTO nodes (organization_id, name, provider, region, instance_type, vcpu, memory_mb, disk_gb, labels)
				VALUES ($1, 'late', 'hetzner', 'fsn1', 'cx53', 16, 32768, 320, '{"game": "rust"}')`, b.org)
		}, 3, 2, "cordoned"},
	}
	for _, st := range steps {
		st.change()
		res := fit()
		if res.Nodes != st.nodes || res.FitsTotal != st.fits || (st.reasonWant != "" && res.RejectedByReason[st.reasonWant] == 0) {
			t.Errorf("%s: %d nodes, %d fit, rejected %v; want %d nodes, %d fit, a %q rejection", st.name, res.Nodes, res.FitsTotal, res.RejectedByReason, st.nodes, st.fits, st.reasonWant)
		}
	}
}

// TestFleetReportCountsPendingDownsize: the fleet report sizes a node with
// a downsize pending as placement does (the smaller of both sizes), so its
// utilisation is what the node will have once the resize is applied.
func TestFleetReportCountsPendingDownsize(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	ids := b.nodes(t, 2)
	for _, id := range ids {
		if _, err := b.st.Pool.Exec(ctx, `INSERT INTO instances (organization_id, node_id, name, cpu_millis, memory_mb, disk_gb)
			VALUES ($1, $2, 'gs-' || $3::text, 2000, 1024, 10)`, b.org, id, id.String()); err != nil {
			t.Fatal(err)
		}
	}
	util := func() map[string]float64 {
		t.Helper()
		rep, err := b.svc.ComputeFleetReport(ctx, b.org, "EUR", 50)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]float64{}
		for _, n := range rep.Nodes {
			out[n.ID] = n.Utilisation.CPU
		}
		return out
	}
	before := util()
	if before[ids[0].String()] != before[ids[1].String()] {
		t.Fatalf("two equal nodes, unequal cpu use: %v", before)
	}
	if _, err := b.st.Pool.Exec(ctx, `UPDATE nodes SET desired_instance_type = 'cx23', desired_vcpu = 4, desired_memory_mb = memory_mb, desired_disk_gb = disk_gb WHERE id = $1`, ids[1]); err != nil {
		t.Fatal(err)
	}
	after := util()
	if after[ids[0].String()] != before[ids[0].String()] || after[ids[1].String()] <= 3*before[ids[1].String()] {
		t.Errorf("cpu use before %v, after a downsize of the second node from 16 to 4 cores %v: want the second's about four times as high", before, after)
	}
}
