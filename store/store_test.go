package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shardform/shardform/store"
	"github.com/shardform/shardform/store/storetest"
)

// The queue pool must not wait for the disk, and opening it must leave the
// main pool durable: the main pool records certificates, nodes and audit
// entries that are handed out or acknowledged after commit.
func TestQueuePool(t *testing.T) {
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(storetest.NewDB(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 20
	main, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer main.Close()
	queue, err := store.QueuePool(ctx, main)
	if err != nil {
		t.Fatal(err)
	}
	defer queue.Close()

	setting := func(p *pgxpool.Pool) string {
		t.Helper()
		// Take each connection out of its pool, so the next call opens a
		// fresh one: a pooled one could predate QueuePool.
		pc, err := p.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		conn := pc.Hijack()
		defer conn.Close(ctx)
		var v string
		if err := conn.QueryRow(ctx, "SHOW synchronous_commit").Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, tc := range []struct {
		name string
		pool *pgxpool.Pool
		want string
	}{
		{"queue", queue, "off"},
		{"main", main, "on"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := setting(tc.pool); got != tc.want {
				t.Errorf("synchronous_commit = %q, want %q", got, tc.want)
			}
		})
	}
	if got := queue.Config().MaxConns; got != 10 {
		t.Errorf("queue pool MaxConns = %d, want 10 (at most 10, never more than the main pool)", got)
	}
}

// TestQueueDepthReleasesItsConnection: a row that cannot be read fails the
// call and gives the connection back, so a one-connection pool still answers.
// (pgx closes the rows itself on a Scan error, so this passed before
// QueueDepth deferred rows.Close too; it guards the behaviour either way.)
func TestQueueDepthReleasesItsConnection(t *testing.T) {
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(storetest.NewDB(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 1
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, `ALTER TABLE river_job RENAME TO river_job_real;
		CREATE TABLE river_job (state text); INSERT INTO river_job VALUES ('available'), (NULL), ('running')`); err != nil {
		t.Fatal(err)
	}
	st := store.NewStore(pool)
	for range 3 {
		if _, err := st.QueueDepth(ctx); err == nil {
			t.Fatal("a NULL state was read as a state")
		}
	}
	wait, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := st.Ping(wait); err != nil {
		t.Fatalf("the pool's only connection was not given back: %v", err)
	}
}
