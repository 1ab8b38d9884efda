package placement

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/shardform/shardform/domain"
	"github.com/shardform/shardform/liveness"
	"github.com/shardform/shardform/store"
	"github.com/shardform/shardform/store/storetest"
)

// drainBundle is an organization with a placement service whose drains are
// queued as River jobs (inserted only: the tests play the worker).
type drainBundle struct {
	ctx context.Context
	st  *store.Store
	s   *Service
	org uuid.UUID
	p   *domain.Principal
}

func setupDrains(t *testing.T) *drainBundle {
	t.Helper()
	ctx := context.Background()
	st := store.NewStore(storetest.NewPool(t))
	s := New(st, Config{})
	t.Cleanup(s.live.Close)
	client, err := river.NewClient(riverpgxv5.New(st.Pool), &river.Config{})
	if err != nil {
		t.Fatal(err)
	}
	s.UseQueue(client)
	b := &drainBundle{ctx: ctx, st: st, s: s}
	if err := st.Pool.QueryRow(ctx, "INSERT INTO organizations (name) VALUES ('o') RETURNING id").Scan(&b.org); err != nil {
		t.Fatal(err)
	}
	b.p = &domain.Principal{OrgID: b.org, HasOrg: true, Role: domain.RoleMember, Perms: domain.NewPermissionSet(domain.RolePermissions(domain.RoleMember))}
	return b
}

func (b *drainBundle) node(t *testing.T, name string) uuid.UUID {
	t.Helper()
	var id uuid.UUID
	if err := b.st.Pool.QueryRow(b.ctx, `INSERT INTO nodes (organization_id, name, provider, region, instance_type, vcpu, memory_mb, disk_gb)
		VALUES ($1, $2, 'local', 'r1', 'local-small', 8, 16384, 200) RETURNING id`, b.org, name).Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id
}

func (b *drainBundle) place(t *testing.T, node uuid.UUID, name string) uuid.UUID {
	t.Helper()
	in, err := b.s.Create(b.ctx, b.p, CreateRequest{NodeID: node.String(), Name: name, CPU: ptr(1), MemoryGB: ptr(1), DiskGB: ptr(1)})
	if err != nil {
		t.Fatal(err)
	}
	return in.ID
}

func (b *drainBundle) exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	if _, err := b.st.Pool.Exec(b.ctx, sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// running takes a drain to where its first attempt's worker left it: the
// migration running with its first move made, its job running since a
// minute.
func (b *drainBundle) running(t *testing.T, m Migration, to uuid.UUID) {
	t.Helper()
	b.exec(t, "UPDATE migrations SET status = 'running', started_at = now() WHERE id = $1", m.ID)
	b.exec(t, "UPDATE instances SET node_id = $2 WHERE id = $1", m.Moves[0].InstanceID, to)
	b.exec(t, "UPDATE migration_moves SET status = 'moved', to_node_id = $2, to_node_name = 'dst', finished_at = now() WHERE migration_id = $1 AND position = 0", m.ID, to)
	b.exec(t, `UPDATE river_job SET state = 'running', attempt = 1, attempted_at = now() - interval '1 minute', attempted_by = ARRAY['dead-worker']
		WHERE id = (SELECT job_id FROM migrations WHERE id = $1)`, m.ID)
}

func (b *drainBundle) jobState(t *testing.T, m Migration) string {
	t.Helper()
	var state string
	if err := b.st.Pool.QueryRow(b.ctx, "SELECT j.state::text FROM river_job j JOIN migrations m ON m.job_id = j.id WHERE m.id = $1", m.ID).Scan(&state); err != nil {
		t.Fatal(err)
	}
	return state
}

// TestOrphanDrainEnded: a running drain whose job ended without recording
// an outcome (cancelled in River UI, discarded after its last attempt,
// deleted) no longer blocks its node: the next drain, migrate, GET or
// cancel ends it (failed, or cancelled for a cancel), its moves left
// cancelled and the moves made kept.
func TestOrphanDrainEnded(t *testing.T) {
	t.Parallel()
	b := setupDrains(t)
	dst := b.node(t, "dst")
	tests := []struct {
		name   string
		end    string // the statement that ends the job
		via    string // drain, migrate, get or cancel
		status string // of the old drain
		error  string
	}{
		{"cancelled in River UI, then a new drain", "UPDATE river_job SET state = 'cancelled', finalized_at = now() WHERE id = $1", "drain", MigrationFailed, "is cancelled without recording an outcome"},
		{"discarded after its attempts, then GET", "UPDATE river_job SET state = 'discarded', finalized_at = now() WHERE id = $1", "get", MigrationFailed, "is discarded without recording an outcome"},
		{"deleted, then a migrate", "DELETE FROM river_job WHERE id = $1", "migrate", MigrationFailed, "is deleted without recording an outcome"},
		{"completed without an outcome, then its cancel", "UPDATE river_job SET state = 'completed', finalized_at = now() WHERE id = $1", "cancel", MigrationCancelled, ""},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := b.node(t, "src"+string(rune('a'+i)))
			for _, n := range []string{"x", "y", "z"} {
				b.place(t, src, n+string(rune('a'+i)))
			}
			m, err := b.s.Drain(b.ctx, b.p, src, DrainRequest{})
			if err != nil {
				t.Fatal(err)
			}
			b.running(t, m, dst)
			// While its job lives, the node is busy.
			if _, err := b.s.Drain(b.ctx, b.p, src, DrainRequest{}); !errors.Is(err, domain.ErrConflict) {
				t.Fatalf("second drain while the first's job runs: %v", err)
			}
			if got, _ := b.s.GetMigration(b.ctx, b.p, m.ID); got.Status != MigrationRunning {
				t.Fatalf("GET of a live drain: %s", got.Status)
			}
			var job int64
			if err := b.st.Pool.QueryRow(b.ctx, "SELECT job_id FROM migrations WHERE id = $1", m.ID).Scan(&job); err != nil {
				t.Fatal(err)
			}
			b.exec(t, tt.end, job)
			switch tt.via {
			case "drain":
				again, err := b.s.Drain(b.ctx, b.p, src, DrainRequest{})
				if err != nil || again.Status != MigrationQueued || again.MovesLeft != 2 {
					t.Fatalf("new drain: %+v (%v)", again, err)
				}
			case "migrate":
				again, err := b.s.Migrate(b.ctx, b.p, src, MigrateRequest{TargetNodeID: dst.String()})
				if err != nil || again.Status != MigrationSucceeded || again.MovesDone != 2 {
					t.Fatalf("migrate: %+v (%v)", again, err)
				}
			case "cancel":
				got, err := b.s.CancelMigration(b.ctx, b.p, m.ID)
				if err != nil || got.Status != tt.status {
					t.Fatalf("cancel: %+v (%v)", got, err)
				}
				if _, err := b.s.Drain(b.ctx, b.p, src, DrainRequest{}); err != nil {
					t.Fatalf("drain after the cancel: %v", err)
				}
			}
			got, err := b.s.GetMigration(b.ctx, b.p, m.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != tt.status || !strings.Contains(got.Error, tt.error) || got.FinishedAt == nil ||
				got.MovesDone != 1 || got.MovesCancelled != 2 || got.MovesLeft != 0 {
				t.Errorf("old drain %s %q: done %d cancelled %d left %d", got.Status, got.Error, got.MovesDone, got.MovesCancelled, got.MovesLeft)
			}
			if !strings.Contains(got.Error, tt.error) {
				t.Errorf("error %q, want %q", got.Error, tt.error)
			}
		})
	}
}

// TestDeadDrainWorker: a running drain whose job is running but whose
// liveness lock no session holds lost its worker: the rescuer makes its
// job available again within seconds, and the next attempt goes on from
// the moves left. While a live session holds the lock, it is left alone,
// and a second attempt refuses to run beside it.
func TestDeadDrainWorker(t *testing.T) {
	t.Parallel()
	b := setupDrains(t)
	src, dst := b.node(t, "src"), b.node(t, "dst")
	for _, n := range []string{"a", "b", "c"} {
		b.place(t, src, n)
	}
	m, err := b.s.Drain(b.ctx, b.p, src, DrainRequest{})
	if err != nil {
		t.Fatal(err)
	}
	b.running(t, m, dst)
	args := DrainArgs{OrganizationID: b.org, MigrationID: m.ID}

	// A live worker (its own liveness session) holds the drain.
	worker := liveness.New(func() *pgx.ConnConfig {
		return liveness.Config(b.st.Pool.Config().ConnConfig, "test worker")
	}, nil)
	t.Cleanup(worker.Close)
	if _, err := worker.Hold(b.ctx, drainLockName(m.ID), func(error) {}); err != nil {
		t.Fatal(err)
	}
	if n, err := b.s.RescueDrains(b.ctx); err != nil || n != 0 || b.jobState(t, m) != "running" {
		t.Fatalf("rescued a live drain: %d %v, job %s", n, err, b.jobState(t, m))
	}
	if err := b.s.RunDrain(b.ctx, args); !errors.Is(err, liveness.ErrHeld) {
		t.Fatalf("a second attempt beside a live one: %v", err)
	}
	// As the job's last attempt: snoozed, and the live one's drain not failed.
	var snooze *river.JobSnoozeError
	if err := b.s.WorkDrain(b.ctx, args, true); !errors.As(err, &snooze) {
		t.Fatalf("the last attempt beside a live one: %v, want a snooze", err)
	}
	if got, err := b.s.GetMigration(b.ctx, b.p, m.ID); err != nil || got.Status != MigrationRunning {
		t.Fatalf("the live drain after a second attempt: %s (%v)", got.Status, err)
	}

	// The worker dies: its session ends, and the lock with it.
	worker.Close()
	ctx, cancel := context.WithCancel(b.ctx)
	watched := make(chan error, 1)
	go func() { watched <- b.s.Watch(ctx, 100*time.Millisecond) }()
	deadline := time.Now().Add(10 * time.Second) // "detected in seconds"
	for b.jobState(t, m) == "running" && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if err := <-watched; err != nil {
		t.Fatal(err)
	}
	if state := b.jobState(t, m); state != "available" {
		t.Fatalf("job of the dead worker's drain is %s, want available within 10 s", state)
	}
	var reason string
	if err := b.st.Pool.QueryRow(b.ctx, "SELECT j.errors[array_length(j.errors, 1)]->>'error' FROM river_job j JOIN migrations m ON m.job_id = j.id WHERE m.id = $1", m.ID).Scan(&reason); err != nil || !strings.Contains(reason, "liveness session ended") {
		t.Errorf("job error %q (%v)", reason, err)
	}

	// The next attempt goes on from the moves left; the move made stays.
	if err := b.s.RunDrain(b.ctx, args); err != nil {
		t.Fatal(err)
	}
	got, err := b.s.GetMigration(b.ctx, b.p, m.ID)
	if err != nil || got.Status != MigrationSucceeded || got.MovesDone != 3 || got.Moves[0].FinishedAt == nil {
		t.Fatalf("resumed drain: %+v (%v)", got, err)
	}
	var onDst int
	if err := b.st.Pool.QueryRow(b.ctx, "SELECT instance_count FROM nodes WHERE id = $1", dst).Scan(&onDst); err != nil || onDst != 3 {
		t.Errorf("%d instances on dst (%v)", onDst, err)
	}
	// An ended drain is no suspect.
	if n, err := b.s.RescueDrains(b.ctx); err != nil || n != 0 {
		t.Errorf("rescue after the end: %d %v", n, err)
	}
}

// TestPendingResizeCounts: while a resize of a node is pending, a
// placement, a drain's move and a migrate onto it count the smaller of its
// current and desired sizes; an upsize pending changes nothing.
func TestPendingResizeCounts(t *testing.T) {
	t.Parallel()
	b := setupDrains(t)
	src, dst := b.node(t, "src"), b.node(t, "dst")
	// dst: 8 cores, 16 GiB now; a downsize to 1 core, 16 GiB pending.
	b.exec(t, "UPDATE nodes SET desired_instance_type = 'tiny', desired_vcpu = 1, desired_memory_mb = 16384, desired_disk_gb = 200 WHERE id = $1", dst)
	two := CreateRequest{NodeID: dst.String(), Name: "two-cores", CPU: ptr(2), MemoryGB: ptr(1), DiskGB: ptr(1)}
	if _, err := b.s.Create(b.ctx, b.p, two); !errors.Is(err, domain.ErrConflict) || !strings.Contains(err.Error(), "insufficient cpu: 900m free") ||
		!strings.Contains(err.Error(), "a resize to tiny is pending") {
		t.Fatalf("placement over the pending size: %v", err)
	}
	in, err := b.s.Create(b.ctx, b.p, CreateRequest{NodeID: src.String(), Name: "on-src", CPU: ptr(2), MemoryGB: ptr(1), DiskGB: ptr(1)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.s.Migrate(b.ctx, b.p, src, MigrateRequest{TargetNodeID: dst.String()}); !errors.Is(err, domain.ErrConflict) || !strings.Contains(err.Error(), "insufficient cpu") {
		t.Fatalf("migrate over the pending size: %v", err)
	}
	if _, err := b.s.Move(b.ctx, b.p, in.ID, MoveRequest{NodeID: dst.String()}); !errors.Is(err, domain.ErrConflict) {
		t.Fatalf("move over the pending size: %v", err)
	}
	m, err := b.s.Drain(b.ctx, b.p, src, DrainRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.s.RunDrain(b.ctx, DrainArgs{OrganizationID: b.org, MigrationID: m.ID}); err != nil {
		t.Fatal(err)
	}
	if m, err = b.s.GetMigration(b.ctx, b.p, m.ID); err != nil || m.Status != MigrationPartial || !strings.Contains(m.Moves[0].Reason, "insufficient_cpu 1") {
		t.Fatalf("drain onto the pending size: %+v (%v)", m, err)
	}
	// An upsize pending: the current size counts.
	b.exec(t, "UPDATE nodes SET desired_instance_type = 'huge', desired_vcpu = 32, desired_memory_mb = 65536, desired_disk_gb = 800 WHERE id = $1", dst)
	if _, err := b.s.Create(b.ctx, b.p, two); err != nil {
		t.Fatalf("placement with an upsize pending: %v", err)
	}
	big := CreateRequest{NodeID: dst.String(), Name: "too-big", CPU: ptr(7), MemoryGB: ptr(1), DiskGB: ptr(1)}
	if _, err := b.s.Create(b.ctx, b.p, big); !errors.Is(err, domain.ErrConflict) {
		t.Fatalf("an upsize pending counted before its apply: %v", err)
	}
}

// TestDrainCancelledInRiver: a drain whose job is cancelled in River UI
// while it runs ends cancelled, its moves left cancelled.
func TestDrainCancelledInRiver(t *testing.T) {
	t.Parallel()
	b := setupDrains(t)
	src := b.node(t, "src")
	b.node(t, "dst")
	b.place(t, src, "a")
	b.place(t, src, "b")
	m, err := b.s.Drain(b.ctx, b.p, src, DrainRequest{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancelCause(b.ctx)
	cancel(river.ErrJobCancelledRemotely)
	if err := b.s.WorkDrain(ctx, DrainArgs{OrganizationID: b.org, MigrationID: m.ID}, false); err == nil {
		t.Fatal("a cancelled job's attempt answered no error")
	}
	got, err := b.s.GetMigration(b.ctx, b.p, m.ID)
	if err != nil || got.Status != MigrationCancelled || got.Error != "its job was cancelled in River" || got.MovesCancelled != 2 {
		t.Errorf("drain cancelled in River: %+v (%v)", got, err)
	}
	// The liveness session is unharmed: the next drain holds its lock.
	m2, err := b.s.Drain(b.ctx, b.p, src, DrainRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.s.WorkDrain(b.ctx, DrainArgs{OrganizationID: b.org, MigrationID: m2.ID}, false); err != nil {
		t.Fatal(err)
	}
	if got, err := b.s.GetMigration(b.ctx, b.p, m2.ID); err != nil || got.Status != MigrationSucceeded {
		t.Errorf("the next drain: %+v (%v)", got, err)
	}
}
