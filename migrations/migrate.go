// Package migrations holds shardform's schema as embedded SQL files (goose
// format, never renumbered) and applies them together with River's own
// migrations under one Postgres advisory lock, so many processes may start at
// once against the same database.
package migrations

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

//go:embed *.sql
var files embed.FS

// lockKey is the advisory lock held while migrating ("shardfrm" in ASCII).
const lockKey int64 = 0x7368617264667270

// Result says what Up applied.
type Result struct {
	App   []string // app migration files applied
	River []int    // River migration versions applied
}

// FS returns the embedded migration files.
func FS() fs.FS { return files }

// Up applies River's migrations and then the app's, holding an advisory lock.
func Up(ctx context.Context, pool *pgxpool.Pool) (Result, error) {
	return UpThen(ctx, pool, nil)
}

// UpThen is Up, then runs then (unless nil) still under the advisory lock:
// a migration step in Go after the SQL ones, run by one process at a time
// (the import of the old pg backend's states, which needs the master key
// to seal them).
func UpThen(ctx context.Context, pool *pgxpool.Pool, then func(context.Context) error) (Result, error) {
	var res Result
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return res, fmt.Errorf("migrate: acquire connection: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", lockKey); err != nil {
		return res, fmt.Errorf("migrate: take advisory lock: %w", err)
	}
	defer func() {
		// Unlock on a fresh context: the caller's may be cancelled already.
		_, _ = conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", lockKey)
	}()

	migrator, err := rivermigrate.New(riverpgxv5.New(pool), nil)
	if err != nil {
		return res, fmt.Errorf("migrate: river: %w", err)
	}
	rr, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil)
	if err != nil {
		return res, fmt.Errorf("migrate: river: %w", err)
	}
	for _, v := range rr.Versions {
		res.River = append(res.River, v.Version)
	}

	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	provider, err := newProvider(db)
	if err != nil {
		return res, err
	}
	results, err := provider.Up(ctx)
	if err != nil {
		return res, fmt.Errorf("migrate: app: %w", err)
	}
	for _, r := range results {
		res.App = append(res.App, r.Source.Path)
	}
	if then != nil {
		if err := then(ctx); err != nil {
			return res, err
		}
	}
	return res, nil
}

func newProvider(db *sql.DB) (*goose.Provider, error) {
	p, err := goose.NewProvider(goose.DialectPostgres, db, files)
	if err != nil {
		return nil, fmt.Errorf("migrate: goose: %w", err)
	}
	return p, nil
}
