package liveness

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shardform/shardform/store/storetest"
)

// free reports whether no session holds name, in a transaction of its own.
func free(t *testing.T, pool *pgxpool.Pool, name string) bool {
	t.Helper()
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	ok, err := Free(ctx, tx, name)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// TestSession: a held lock is not free and cannot be held by another
// session; it is free again once released, or once its session ends (the
// worker died), and the session reopens for the next hold.
func TestSession(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := storetest.NewPool(t)
	config := func() *pgx.ConnConfig { return Config(pool.Config().ConnConfig, "liveness test") }
	a, b := New(config, nil), New(config, nil)
	t.Cleanup(a.Close)
	t.Cleanup(b.Close)

	release, err := a.Hold(ctx, "work-1", func(error) {})
	if err != nil {
		t.Fatal(err)
	}
	if free(t, pool, "work-1") {
		t.Fatal("a held lock reads free")
	}
	if _, err := b.Hold(ctx, "work-1", func(error) {}); !errors.Is(err, ErrHeld) {
		t.Fatalf("second holder: %v, want ErrHeld", err)
	}
	var app string
	if err := pool.QueryRow(ctx, "SELECT application_name FROM pg_stat_activity WHERE application_name = 'liveness test' LIMIT 1").Scan(&app); err != nil {
		t.Errorf("the session is not named in pg_stat_activity: %v", err)
	}
	release()
	if !free(t, pool, "work-1") {
		t.Fatal("a released lock is held")
	}

	if _, err := a.Hold(ctx, "work-2", func(error) {}); err != nil {
		t.Fatal(err)
	}
	a.Close() // the process dies: Postgres ends the session
	// The server ends the backend after the connection closes: wait for it.
	for deadline := time.Now().Add(10 * time.Second); !free(t, pool, "work-2"); {
		if time.Now().After(deadline) {
			t.Fatal("the lock of an ended session is still held after 10 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := a.Hold(ctx, "work-3", func(error) {}); err != nil {
		t.Fatalf("hold after the session ended: %v", err)
	}
	if free(t, pool, "work-3") {
		t.Fatal("a lock held in a reopened session reads free")
	}
}
