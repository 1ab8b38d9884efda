package migrations_test

import (
	"context"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shardform/shardform/migrations"
	"github.com/shardform/shardform/store/storetest"
)

// TestUpConcurrent starts several "processes" migrating an empty database at
// once: the advisory lock lets one apply everything and the others find
// nothing left to do.
func TestUpConcurrent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := emptyDB(t)
	const n = 4
	var wg sync.WaitGroup
	results := make([]migrations.Result, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			pool, err := pgxpool.New(ctx, url)
			if err != nil {
				errs[i] = err
				return
			}
			defer pool.Close()
			results[i], errs[i] = migrations.Up(ctx, pool)
		})
	}
	wg.Wait()
	applied := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("migrator %d: %v", i, errs[i])
		}
		if len(results[i].App) > 0 {
			applied++
			if len(results[i].River) == 0 {
				t.Errorf("migrator %d applied app migrations but not River's", i)
			}
		}
	}
	if applied != 1 {
		t.Fatalf("%d migrators applied the app migrations, want exactly 1", applied)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, table := range []string{"users", "api_tokens", "audit_logs", "river_job"} {
		var ok bool
		if err := conn.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", table).Scan(&ok); err != nil || !ok {
			t.Errorf("table %s missing after migrate (%v)", table, err)
		}
	}
	// River's args index exists when shardform's migration tunes it.
	var opts []string
	if err := conn.QueryRow(ctx, "SELECT coalesce(reloptions, '{}') FROM pg_class WHERE relname = 'river_job_args_index'").Scan(&opts); err != nil || len(opts) != 1 || opts[0] != "fastupdate=off" {
		t.Errorf("river_job_args_index options %v (%v), want fastupdate=off", opts, err)
	}
}

// emptyDB creates an unmigrated database for this test.
func emptyDB(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	url := storetest.NewDB(t) // migrated clone; empty it by dropping and recreating its schema
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP SCHEMA public CASCADE; CREATE SCHEMA public"); err != nil {
		t.Fatal(err)
	}
	return url
}
