package provision

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shardform/shardform/domain"
	"github.com/shardform/shardform/providers"
	"github.com/shardform/shardform/seal"
	"github.com/shardform/shardform/store"
	"github.com/shardform/shardform/store/storetest"
)

// logBuffer collects a JSON logger's records; safe for concurrent writes.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// records returns the logged records whose message contains msg.
func (b *logBuffer) records(msg string) []map[string]any {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(b.buf.String(), "\n") {
		var r map[string]any
		if json.Unmarshal([]byte(line), &r) == nil && strings.Contains(r["msg"].(string), msg) {
			out = append(out, r)
		}
	}
	return out
}

type testBundle struct {
	svc  *Service
	pool *pgxpool.Pool
	logs *logBuffer
	p    *domain.Principal
}

// setup builds the service on a fresh database (no Terraform: the tests
// stop before a run would start it) with one organization and a reader
// and writer of it.
func setup(t *testing.T) *testBundle {
	t.Helper()
	pool := storetest.NewPool(t)
	sealer, err := seal.New(bytes.Repeat([]byte{7}, seal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{}
	svc := New(store.NewStore(pool), sealer, providers.NewRegistry(providers.Local{}), nil, time.Now, slog.New(slog.NewJSONHandler(logs, nil)))
	var org uuid.UUID
	if err := pool.QueryRow(context.Background(), "INSERT INTO organizations (name) VALUES ('acme') RETURNING id").Scan(&org); err != nil {
		t.Fatal(err)
	}
	p := &domain.Principal{UserID: uuid.New(), OrgID: org, HasOrg: true, Role: domain.RoleOwner,
		Perms: domain.NewPermissionSet(domain.RolePermissions(domain.RoleOwner))}
	return &testBundle{svc: svc, pool: pool, logs: logs, p: p}
}

// insertRequest stores a request with the given raw labels, as a row
// written by hand or by another version might be.
func (b *testBundle) insertRequest(t *testing.T, status, labels, planSummary string) uuid.UUID {
	t.Helper()
	var id uuid.UUID
	var summary *string
	if planSummary != "" {
		summary = &planSummary
	}
	err := b.pool.QueryRow(context.Background(), `INSERT INTO provision_requests (organization_id, provider, region, instance_type, name, labels, status, plan_summary)
		VALUES ($1, 'local', 'local', 'local-small', 'web-1', $2::jsonb, $3, $4::jsonb) RETURNING id`, b.p.OrgID, labels, status, summary).Scan(&id)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestUnreadableLabels(t *testing.T) {
	t.Parallel()

	t.Run("a request is shown without them, and the log says why", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		id := b.insertRequest(t, StatusPending, `{"team": 7}`, `"not a summary"`)
		r, err := b.svc.Get(context.Background(), b.p, id)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Labels) != 0 || r.PlanSummary != nil {
			t.Errorf("labels %v, plan summary %v: want neither", r.Labels, r.PlanSummary)
		}
		for _, msg := range []string{"unreadable labels", "unreadable plan summary"} {
			recs := b.logs.records(msg)
			if len(recs) != 1 || recs[0]["level"] != "ERROR" || recs[0]["provision_id"] != id.String() || recs[0]["error"] == "" {
				t.Errorf("log records %q: %v", msg, recs)
			}
		}
		// Still listed, so it can be destroyed.
		rs, _, err := b.svc.List(context.Background(), b.p, Filter{}, domain.Page{Page: 1, Limit: 10})
		if err != nil || len(rs) != 1 {
			t.Fatalf("list: %v, %v", rs, err)
		}
	})

	t.Run("a node is shown without them, and the log says why", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		var id uuid.UUID
		err := b.pool.QueryRow(context.Background(), `INSERT INTO nodes (organization_id, name, provider, region, instance_type, vcpu, memory_mb, disk_gb, labels)
			VALUES ($1, 'n1', 'local', 'local', 'local-small', 1, 1024, 10, '["a"]') RETURNING id`, b.p.OrgID).Scan(&id)
		if err != nil {
			t.Fatal(err)
		}
		n, err := b.svc.GetNode(context.Background(), b.p, id)
		if err != nil {
			t.Fatal(err)
		}
		if len(n.Labels) != 0 {
			t.Errorf("labels %v", n.Labels)
		}
		recs := b.logs.records("node has unreadable labels")
		if len(recs) != 1 || recs[0]["node_id"] != id.String() {
			t.Errorf("log records: %v", recs)
		}
	})

	t.Run("a run fails instead of building the machine without them", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		id := b.insertRequest(t, StatusPlanning, `{"team": 7}`, "")
		// The service has no Terraform runner: reaching it would panic.
		if err := b.svc.RunPlan(context.Background(), Job{OrganizationID: b.p.OrgID, ProvisionID: id, Kind: RunPlan, Attempt: 1, MaxAttempts: 5}); err != nil {
			t.Fatalf("RunPlan: %v (the failure belongs to the request, not a retry)", err)
		}
		r, err := b.svc.Get(context.Background(), b.p, id)
		if err != nil {
			t.Fatal(err)
		}
		if r.Status != StatusFailed || !strings.Contains(r.Error, "stored labels of provision request "+id.String()+" are unreadable") {
			t.Fatalf("status %s, error %q", r.Status, r.Error)
		}
	})
}

// TestLogFeedListenFailure: a listener that cannot LISTEN says so in the log
// and tries again while followers wait.
func TestLogFeedListenFailure(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.svc.feed.retry = 10 * time.Millisecond
	b.svc.feed.config = func() *pgx.ConnConfig {
		cfg := b.svc.sessionConfig(feedApplicationName)
		cfg.Database = "sf_no_such_database"
		return cfg
	}
	_, stop, err := b.svc.FollowLogs(context.Background(), b.p, uuid.New())
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	deadline := time.Now().Add(30 * time.Second)
	for len(b.logs.records("provision log listener failed")) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("no log line of a failed listener (and its retry): %v", b.logs.records(""))
		}
		time.Sleep(10 * time.Millisecond)
	}
	rec := b.logs.records("provision log listener failed")[0]
	if rec["level"] != "ERROR" || !strings.Contains(rec["error"].(string), "sf_no_such_database") {
		t.Errorf("log record %v", rec)
	}
}

// TestFollowLogsNeedsPermission: following takes provision:read.
func TestFollowLogsNeedsPermission(t *testing.T) {
	t.Parallel()
	b := setup(t)
	p := *b.p
	p.Perms = domain.NewPermissionSet([]domain.Permission{domain.PermNodesRead})
	if _, _, err := b.svc.FollowLogs(context.Background(), &p, uuid.New()); !errors.Is(err, domain.ErrForbidden) {
		t.Fatalf("follow without provision:read: %v", err)
	}
	b.svc.feed.mu.Lock()
	defer b.svc.feed.mu.Unlock()
	if b.svc.feed.count != 0 || b.svc.feed.stop != nil {
		t.Fatalf("%d followers (listener running: %v) after a refusal", b.svc.feed.count, b.svc.feed.stop != nil)
	}
}

// TestLogLinesStoredInBatches: a burst of lines (one per message of a
// -json stream) is stored in few statements, in order, and Flush stores
// everything pending at once (a command's end).
func TestLogLinesStoredInBatches(t *testing.T) {
	t.Parallel()
	b := setup(t)
	id := b.insertRequest(t, StatusPlanning, `{}`, "")
	run, err := b.svc.q.InsertRun(context.Background(), b.pool, store.InsertRunParams{OrganizationID: b.p.OrgID, ProvisionID: id, Kind: RunPlan})
	if err != nil {
		t.Fatal(err)
	}
	w := b.svc.newLogWriter(context.Background(), id, run.ID, "plan")
	var want strings.Builder
	want.WriteString("[shardform] === plan ===\n")
	for i := range 200 {
		line := fmt.Sprintf("terraform_data.n[%d]: Plan to create\n", i)
		want.WriteString(line)
		if _, err := w.Write([]byte(line)); err != nil {
			t.Fatal(err)
		}
	}
	w.Flush()
	rows, err := b.svc.q.ListProvisionLogs(context.Background(), b.pool, store.ListProvisionLogsParams{OrganizationID: b.p.OrgID, ProvisionID: id})
	if err != nil {
		t.Fatal(err)
	}
	var got strings.Builder
	for _, r := range rows {
		got.WriteString(r.Chunk)
	}
	if got.String() != want.String() {
		t.Fatalf("stored log differs:\n%s", got.String())
	}
	// The heading is its own row; 200 lines written faster than the batch
	// delay are one or a few more (never one per line).
	if len(rows) > 20 {
		t.Errorf("%d rows for 200 lines", len(rows))
	}
	w.Close()
}
