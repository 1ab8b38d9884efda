package nodeops_test

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/shardform/shardform/credentials"
	"github.com/shardform/shardform/domain"
	"github.com/shardform/shardform/internal/fake/hcloudfake"
	"github.com/shardform/shardform/nodeops"
	"github.com/shardform/shardform/providers"
	"github.com/shardform/shardform/seal"
	"github.com/shardform/shardform/store"
	"github.com/shardform/shardform/store/storetest"
)

// bundle is one test's service on its own database, a Hetzner fake with
// one server, and a node of it.
type bundle struct {
	pool   *pgxpool.Pool
	svc    *nodeops.Service
	fake   *hcloudfake.Server
	server int64
	p      *domain.Principal
	node   uuid.UUID
}

func setup(t *testing.T) *bundle {
	t.Helper()
	ctx := context.Background()
	pool := storetest.NewPool(t)
	st := store.NewStore(pool)
	sealer, err := seal.New(bytes.Repeat([]byte{5}, seal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	fake := hcloudfake.New(t, hcloudfake.Options{})
	svc := nodeops.New(st, sealer, nodeops.Config{StopTimeout: time.Second,
		Clouds: map[string]nodeops.Power{"hetzner": providers.HetznerPower{Endpoint: fake.URL, PollInterval: time.Millisecond}}})
	// An insert-only River client: the test runs the jobs itself.
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{})
	if err != nil {
		t.Fatal(err)
	}
	svc.UseQueue(client)
	var org, user uuid.UUID
	if err := pool.QueryRow(ctx, "INSERT INTO organizations (name) VALUES ('o') RETURNING id").Scan(&org); err != nil {
		t.Fatal(err)
	}
	if err := pool.QueryRow(ctx, "INSERT INTO users (email, password_hash) VALUES ('ops@example.com', 'x') RETURNING id").Scan(&user); err != nil {
		t.Fatal(err)
	}
	p := &domain.Principal{UserID: user, OrgID: org, HasOrg: true, Role: domain.RoleAdmin, Perms: domain.EffectivePermissions(domain.RoleAdmin, nil)}
	if _, err := credentials.New(st, sealer, nil).Create(ctx, p, credentials.Input{Name: "hz", Provider: "hetzner", Secret: credentials.Secret{"token": hcloudfake.Token}}); err != nil {
		t.Fatal(err)
	}
	server := fake.AddServer("mc-1")
	var node uuid.UUID
	if err := pool.QueryRow(ctx, `INSERT INTO nodes (organization_id, name, provider, region, instance_type, vcpu, memory_mb, disk_gb, server_id)
		VALUES ($1, 'mc-1', 'hetzner', 'fsn1', 'cx23', 2, 4096, 40, $2) RETURNING id`, org, strconv.FormatInt(server, 10)).Scan(&node); err != nil {
		t.Fatal(err)
	}
	return &bundle{pool: pool, svc: svc, fake: fake, server: server, p: p, node: node}
}

// job is the queued job of action a as a worker hands it to Run.
func (b *bundle) job(t *testing.T, a nodeops.Action, attempt int) (nodeops.Job, func() string) {
	t.Helper()
	var jobID int64
	if err := b.pool.QueryRow(context.Background(), "SELECT job_id FROM node_actions WHERE id = $1", a.ID).Scan(&jobID); err != nil {
		t.Fatal(err)
	}
	// River completes only a running job: mark it running, as a fetch would.
	if _, err := b.pool.Exec(context.Background(), "UPDATE river_job SET state = 'running', attempt = $2, attempted_at = now(), finalized_at = NULL WHERE id = $1", jobID, attempt); err != nil {
		t.Fatal(err)
	}
	state := func() string {
		var s string
		if err := b.pool.QueryRow(context.Background(), "SELECT state::text FROM river_job WHERE id = $1", jobID).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	return nodeops.Job{
		Args: nodeops.ActionArgs{OrganizationID: b.p.OrgID, NodeID: b.node, ActionID: a.ID}, JobID: jobID, Attempt: attempt, MaxAttempts: 3,
		// What river.JobCompleteTx does inside a worker (it needs River's
		// client in the context, which only a worker has).
		Complete: func(ctx context.Context, tx pgx.Tx) error {
			_, err := tx.Exec(ctx, "UPDATE river_job SET state = 'completed', finalized_at = now() WHERE id = $1 AND state = 'running'", jobID)
			return err
		},
	}, state
}

func (b *bundle) action(t *testing.T, id uuid.UUID) nodeops.Action {
	t.Helper()
	acts, _, err := b.svc.ListActions(context.Background(), b.p, b.node, domain.Page{Page: 1, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range acts {
		if a.ID == id {
			return a
		}
	}
	t.Fatalf("no action %s", id)
	return nodeops.Action{}
}

// TestRunRetries: a cloud error that may pass is returned (River retries
// the job) with the action still running and its error noted; on the last
// attempt it fails the action and completes the job, recording what the
// cloud holds.
func TestRunRetries(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	a, err := b.svc.Request(ctx, b.p, b.node, nodeops.KindStop, false)
	if err != nil {
		t.Fatal(err)
	}
	b.fake.FailNextActions(2)

	job, jobState := b.job(t, a, 1)
	if err := b.svc.Run(ctx, job); err == nil || !strings.Contains(err.Error(), "service_error") {
		t.Fatalf("first attempt: %v", err)
	}
	if got := b.action(t, a.ID); got.Status != nodeops.StatusRunning || got.Attempt != 1 || !strings.Contains(got.Error, "unavailable") {
		t.Fatalf("after a failed attempt: %+v", got)
	}
	if s := jobState(); s != "running" {
		t.Errorf("the job is %s: River, not the service, retries it", s)
	}

	job, jobState = b.job(t, a, 3)
	if err := b.svc.Run(ctx, job); err != nil {
		t.Fatalf("last attempt: %v", err)
	}
	got := b.action(t, a.ID)
	if got.Status != nodeops.StatusFailed || got.Attempt != 3 || !strings.Contains(got.Error, "unavailable") || got.FinishedAt == nil {
		t.Fatalf("after the last attempt: %+v", got)
	}
	if s := jobState(); s != "completed" {
		t.Errorf("the job is %s after the action failed", s)
	}
	st, err := b.svc.Status(ctx, b.p, b.node)
	if err != nil || st.RecordedPowerState != "running" || st.PowerState != "running" || st.Action == nil || st.Action.ID != a.ID {
		t.Fatalf("status after the failed stop: %+v, %v", st, err)
	}

	// A job run again after its action finished changes nothing and completes.
	job, jobState = b.job(t, a, 3)
	if err := b.svc.Run(ctx, job); err != nil || jobState() != "completed" {
		t.Fatalf("a finished action's job run again: %v, %s", err, jobState())
	}
	if b.fake.ServerStatus(b.server) != hcloudfake.StatusRunning {
		t.Errorf("the server is %s", b.fake.ServerStatus(b.server))
	}

	// The node is free again: the next stop goes through.
	a2, err := b.svc.Request(ctx, b.p, b.node, nodeops.KindStop, true)
	if err != nil {
		t.Fatal(err)
	}
	job, _ = b.job(t, a2, 1)
	if err := b.svc.Run(ctx, job); err != nil {
		t.Fatal(err)
	}
	if got := b.action(t, a2.ID); got.Status != nodeops.StatusSucceeded || b.fake.ServerStatus(b.server) != hcloudfake.StatusOff {
		t.Fatalf("forced stop: %+v; server %s", got, b.fake.ServerStatus(b.server))
	}
}

// TestRequestValidates: kinds, force and permissions are checked before
// anything is recorded.
func TestRequestValidates(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	reader := &domain.Principal{UserID: b.p.UserID, OrgID: b.p.OrgID, HasOrg: true, Role: domain.RoleViewer, Perms: domain.EffectivePermissions(domain.RoleViewer, nil)}
	tests := []struct {
		name  string
		p     *domain.Principal
		kind  string
		force bool
		field string // a validation error naming it; "": forbidden
	}{
		{"unknown kind", b.p, "hibernate", false, "kind"},
		{"forced start", b.p, nodeops.KindStart, true, "force"},
		{"forced reboot", b.p, nodeops.KindReboot, true, "force"},
		{"viewer", reader, nodeops.KindStop, false, ""},
		{"no organization", &domain.Principal{UserID: b.p.UserID}, nodeops.KindStop, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := b.svc.Request(ctx, tt.p, b.node, tt.kind, tt.force)
			var v *domain.ValidationError
			switch {
			case tt.field != "" && (!errors.As(err, &v) || v.Field != tt.field):
				t.Errorf("error %v, want a validation error naming %s", err, tt.field)
			case tt.field == "" && !errors.Is(err, domain.ErrForbidden):
				t.Errorf("error %v, want forbidden", err)
			}
		})
	}
	if _, err := b.svc.Request(ctx, b.p, uuid.New(), nodeops.KindStop, false); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("unknown node: %v", err)
	}
	var n int
	if err := b.pool.QueryRow(ctx, "SELECT count(*) FROM node_actions").Scan(&n); err != nil || n != 0 {
		t.Errorf("%d actions recorded (%v)", n, err)
	}
}

// TestRunHetznerBusyAndFailedAction: a Hetzner server locked past the
// client's own retries leaves the action running with the error noted and
// the job returned for River to retry (never failed at once as a final
// state error); the next attempt, once the lock is gone, succeeds. An
// action Hetzner ends with status "error" is retried the same way.
func TestRunHetznerBusyAndFailedAction(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	b.fake.SetServerStatus(b.server, hcloudfake.StatusOff)
	a, err := b.svc.Request(ctx, b.p, b.node, nodeops.KindStart, false)
	if err != nil {
		t.Fatal(err)
	}
	b.fake.LockNextActions(1000)
	job, jobState := b.job(t, a, 1)
	if err := b.svc.Run(ctx, job); !errors.Is(err, providers.ErrCloudBusy) {
		t.Fatalf("attempt on a locked server: %v", err)
	}
	if got := b.action(t, a.ID); got.Status != nodeops.StatusRunning || !strings.Contains(got.Error, "locked") {
		t.Fatalf("after a locked attempt: %+v", got)
	}
	if s := jobState(); s != "running" {
		t.Errorf("the job is %s: River retries it", s)
	}
	b.fake.LockNextActions(2) // the client's own retries get past these
	job, jobState = b.job(t, a, 2)
	if err := b.svc.Run(ctx, job); err != nil {
		t.Fatalf("attempt once the lock goes: %v", err)
	}
	if got := b.action(t, a.ID); got.Status != nodeops.StatusSucceeded || jobState() != "completed" || b.fake.ServerStatus(b.server) != hcloudfake.StatusRunning {
		t.Fatalf("after the lock: %+v, job %s, server %s", got, jobState(), b.fake.ServerStatus(b.server))
	}

	a, err = b.svc.Request(ctx, b.p, b.node, nodeops.KindStop, true)
	if err != nil {
		t.Fatal(err)
	}
	b.fake.FailNextActionResults(1)
	job, _ = b.job(t, a, 1)
	if err := b.svc.Run(ctx, job); err == nil || !strings.Contains(err.Error(), "the action failed") {
		t.Fatalf("attempt whose action ends in error: %v", err)
	}
	if got := b.action(t, a.ID); got.Status != nodeops.StatusRunning || !strings.Contains(got.Error, "action_failed") {
		t.Fatalf("after the failed action: %+v", got)
	}
	job, _ = b.job(t, a, 2)
	if err := b.svc.Run(ctx, job); err != nil {
		t.Fatal(err)
	}
	if got := b.action(t, a.ID); got.Status != nodeops.StatusSucceeded || b.fake.ServerStatus(b.server) != hcloudfake.StatusOff {
		t.Fatalf("stop after the failed action: %+v, server %s", got, b.fake.ServerStatus(b.server))
	}
}
