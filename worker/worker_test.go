package worker_test

import (
	"context"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/shardform/shardform/store"
	"github.com/shardform/shardform/store/storetest"
	"github.com/shardform/shardform/worker"
)

func TestCleanupDeletesOnlyExpired(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := storetest.NewPool(t)
	st := store.NewStore(pool)
	exec := func(sql string) {
		t.Helper()
		if _, err := pool.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	exec(`INSERT INTO users (id, email, password_hash) VALUES ('00000000-0000-0000-0000-0000000000a1', 'u@example.com', 'x')`)
	exec(`INSERT INTO organizations (id, name) VALUES ('00000000-0000-0000-0000-0000000000b1', 'o')`)
	exec(`INSERT INTO refresh_tokens (family_id, user_id, token_hash, expires_at) VALUES
		(gen_random_uuid(), '00000000-0000-0000-0000-0000000000a1', 'old', now() - interval '2 days'),
		(gen_random_uuid(), '00000000-0000-0000-0000-0000000000a1', 'live', now() + interval '1 day')`)
	exec(`INSERT INTO mfa_challenges (user_id, token_hash, expires_at) VALUES
		('00000000-0000-0000-0000-0000000000a1', 'old', now() - interval '1 minute'),
		('00000000-0000-0000-0000-0000000000a1', 'live', now() + interval '1 minute')`)
	exec(`INSERT INTO invites (organization_id, email, role, token_hash, expires_at) VALUES
		('00000000-0000-0000-0000-0000000000b1', 'a@example.com', 'member', 'old', now() - interval '1 minute'),
		('00000000-0000-0000-0000-0000000000b1', 'b@example.com', 'member', 'live', now() + interval '1 day')`)
	exec(`INSERT INTO rate_limit_counters (key, window_start, count, expires_at) VALUES
		('old', now() - interval '2 minutes', 1, now() - interval '1 minute'),
		('live', now(), 1, now() + interval '1 minute')`)

	// Finished drains and power actions older than 90 days go, but never a
	// node's latest power action, nor anything running or recent.
	exec(`INSERT INTO nodes (id, organization_id, name, provider, region, instance_type, vcpu, memory_mb, disk_gb)
		VALUES ('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000b1', 'n', 'local', 'local', 'local-small', 1, 1024, 10)`)
	exec(`INSERT INTO migrations (organization_id, kind, node_id, node_name, status, error, created_at, finished_at) VALUES
		('00000000-0000-0000-0000-0000000000b1', 'drain', '00000000-0000-0000-0000-0000000000c1', 'n', 'succeeded', 'old', now() - interval '100 days', now() - interval '100 days'),
		('00000000-0000-0000-0000-0000000000b1', 'drain', '00000000-0000-0000-0000-0000000000c1', 'n', 'failed', 'live', now() - interval '10 days', now() - interval '10 days'),
		('00000000-0000-0000-0000-0000000000b1', 'drain', '00000000-0000-0000-0000-0000000000c1', 'n', 'running', 'live', now() - interval '200 days', NULL)`)
	exec(`INSERT INTO node_actions (organization_id, node_id, kind, status, error, created_at, finished_at) VALUES
		('00000000-0000-0000-0000-0000000000b1', '00000000-0000-0000-0000-0000000000c1', 'stop', 'succeeded', 'old', now() - interval '300 days', now() - interval '300 days'),
		('00000000-0000-0000-0000-0000000000b1', '00000000-0000-0000-0000-0000000000c1', 'start', 'failed', 'live', now() - interval '200 days', now() - interval '200 days')`)

	// Plan runs finished more than 7 days ago lose their saved plans
	// (applied or not); newer ones keep theirs, and so do other runs.
	exec(`INSERT INTO provision_requests (id, organization_id, provider, region, instance_type, name, status)
		VALUES ('00000000-0000-0000-0000-0000000000d1', '00000000-0000-0000-0000-0000000000b1', 'local', 'local', 'local-small', 'p', 'planned')`)
	exec(`INSERT INTO provision_runs (organization_id, provision_id, kind, status, error, finished_at, plan_file) VALUES
		('00000000-0000-0000-0000-0000000000b1', '00000000-0000-0000-0000-0000000000d1', 'plan', 'succeeded', 'old', now() - interval '8 days', '\x01'),
		('00000000-0000-0000-0000-0000000000b1', '00000000-0000-0000-0000-0000000000d1', 'plan', 'succeeded', 'live', now() - interval '6 days', '\x01'),
		('00000000-0000-0000-0000-0000000000b1', '00000000-0000-0000-0000-0000000000d1', 'plan', 'failed', 'none', now() - interval '9 days', NULL)`)

	client, err := worker.NewClient(pool, st, worker.Options{Work: true, CleanupInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	done, cancel := client.Subscribe(river.EventKindJobCompleted, river.EventKindJobFailed)
	defer cancel()
	if err := client.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = client.Stop(context.WithoutCancel(ctx)) }()

	// RunOnStart: the periodic cleanup runs as the worker starts.
	select {
	case ev := <-done:
		if ev.Job.Kind != "cleanup" || ev.Job.State != rivertype.JobStateCompleted {
			t.Fatalf("job %s ended %s: %v", ev.Job.Kind, ev.Job.State, ev.Job.Errors)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("cleanup job did not run")
	}
	for _, table := range []string{"refresh_tokens", "mfa_challenges", "invites", "rate_limit_counters", "migrations", "node_actions", "provision_runs"} {
		var left []string
		rows, err := pool.Query(ctx, "SELECT encode(token_hash, 'escape') FROM "+table)
		switch table {
		case "rate_limit_counters":
			rows, err = pool.Query(ctx, "SELECT key FROM rate_limit_counters")
		case "migrations", "node_actions":
			rows, err = pool.Query(ctx, "SELECT DISTINCT error FROM "+table)
		case "provision_runs": // those with a saved plan left
			rows, err = pool.Query(ctx, "SELECT error FROM provision_runs WHERE plan_file IS NOT NULL")
		}
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			left = append(left, s)
		}
		if len(left) != 1 || left[0] != "live" {
			t.Errorf("%s after cleanup: %v, want only the live row", table, left)
		}
	}
}
