// Package store is shardform's data access: one .sql file per area, compiled
// by sqlc (sqlc.yaml at the repository root; run `sqlc generate` after editing
// a query) into methods that take the database handle as an argument, so the
// same query runs on the pool or inside a transaction. Every query on
// organization data takes the organization id.
package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Store bundles the connection pool with the generated queries.
type Store struct {
	Pool *pgxpool.Pool
	Q    *Queries
}

// NewStore wraps a pool.
func NewStore(pool *pgxpool.Pool) *Store { return &Store{Pool: pool, Q: New()} }

// InTx runs fn in a transaction, committing when fn returns nil and rolling
// back otherwise.
func (s *Store) InTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, s.Pool, fn)
}

// IsNoRows reports whether err means a query matched no row.
func IsNoRows(err error) bool { return errors.Is(err, pgx.ErrNoRows) }

// IsUniqueViolation reports whether err is a unique-constraint violation.
func IsUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505"
}

// IsForeignKeyViolation reports whether err is a foreign-key violation
// (the referenced row is gone).
func IsForeignKeyViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23503"
}

// Connect opens a pool and checks that the database answers.
func Connect(ctx context.Context, url string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	if !strings.Contains(url, "pool_max_conns") {
		// pgxpool's default (the CPU count, at least 4) is too small for API
		// handlers, River and Terraform log writers together.
		cfg.MaxConns = max(cfg.MaxConns, 20)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to database: %w", err)
	}
	return pool, nil
}

// QueuePool opens a second, smaller pool on main's database for River's own
// statements: fetching jobs, completing those whose workers do not complete
// them in their own transaction, leader election, maintenance, periodic
// inserts. Its commits do not wait for the WAL to reach the disk
// (synchronous_commit = off), which takes a disk flush off the path of
// every job between insert and pickup.
//
// This is safe because River runs jobs at least once and every shardform
// job is idempotent: if the Postgres server crashes (a client crash loses
// nothing), the last fraction of a second of River's own changes may be
// lost, so a fetched job becomes available again or a completed one runs
// again. Everything a job produces is committed durably on the main pool,
// and that commit flushes every earlier change of River's with it, so a
// durable result is never paired with a lost fetch. Jobs are inserted on the
// main pool, inside the caller's transaction.
func QueuePool(ctx context.Context, main *pgxpool.Pool) (*pgxpool.Pool, error) {
	cfg := main.Config()
	cfg.MaxConns = min(cfg.MaxConns, 10)
	cfg.MinConns = min(cfg.MinConns, cfg.MaxConns)
	if cfg.ConnConfig.RuntimeParams == nil {
		cfg.ConnConfig.RuntimeParams = map[string]string{}
	}
	cfg.ConnConfig.RuntimeParams["synchronous_commit"] = "off"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open queue pool: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect queue pool: %w", err)
	}
	return pool, nil
}

// EnsureDatabase creates the database named in url if it does not exist,
// connecting to the server's "postgres" database to do so.
func EnsureDatabase(ctx context.Context, url string) (created bool, err error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return false, fmt.Errorf("parse database url: %w", err)
	}
	name := cfg.Database
	if name == "" || name == "postgres" {
		return false, nil
	}
	cfg.Database = "postgres"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return false, fmt.Errorf("connect to server to create database %q: %w", name, err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return false, fmt.Errorf("look up database %q: %w", name, err)
	}
	if exists {
		return false, nil
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "42P04" { // created meanwhile by another process
			return false, nil
		}
		return false, fmt.Errorf("create database %q: %w", name, err)
	}
	return true, nil
}

// RetryJob makes a running River job available again at once, recording
// why in its errors, as River's own rescuer does after the job timeout:
// the caller has established that the job's worker is gone. The job keeps
// its place in the queue (its scheduled time), ahead of the jobs queued
// after it. It reports whether the job was still running (else nothing
// changed).
func RetryJob(ctx context.Context, db DBTX, jobID int64, reason string) (bool, error) {
	tag, err := db.Exec(ctx, `UPDATE river_job
		SET state = 'available', scheduled_at = least(scheduled_at, now()),
		    errors = array_append(errors, jsonb_build_object('at', now(), 'attempt', attempt, 'error', $2::text, 'trace', ''))
		WHERE id = $1 AND state = 'running'`, jobID, reason)
	if err != nil {
		return false, err
	}
	return tag.RowsAffected() == 1, nil
}

// JobHolder says who holds a River job now, for an attempt that lost its
// claim to it (see GiveBackJob).
type JobHolder int

const (
	// JobGivenBack: the job was this attempt's and is retryable now.
	JobGivenBack JobHolder = iota
	// JobNewerAttempt: a later attempt is running the job.
	JobNewerAttempt
	// JobNotRunning: the job is not running (retrying, or ended).
	JobNotRunning
)

// GiveBackJob makes job jobID retryable at retryAt when it is still
// running attempt (recording reason as the attempt's error), and otherwise
// says who holds it. An attempt whose worker lost its liveness session
// calls it before returning to River: River's completer then finds the job
// no longer running and changes nothing, where it would otherwise set the
// state of whichever attempt runs the job by then.
func GiveBackJob(ctx context.Context, db DBTX, jobID int64, attempt int, reason string, retryAt time.Time) (JobHolder, error) {
	var state string
	var current int
	err := db.QueryRow(ctx, `WITH j AS (SELECT id, state, attempt FROM river_job WHERE id = $1 FOR UPDATE),
		upd AS (
			UPDATE river_job SET state = 'retryable', scheduled_at = $4,
			    errors = array_append(errors, jsonb_build_object('at', now(), 'attempt', river_job.attempt, 'error', $3::text, 'trace', ''))
			FROM j WHERE river_job.id = j.id AND j.state = 'running' AND j.attempt = $2
			RETURNING river_job.id)
		SELECT CASE WHEN EXISTS (SELECT 1 FROM upd) THEN 'given back' ELSE j.state::text END, j.attempt FROM j`,
		jobID, attempt, reason, retryAt).Scan(&state, &current)
	if IsNoRows(err) {
		return JobNotRunning, nil
	}
	if err != nil {
		return 0, err
	}
	switch {
	case state == "given back":
		return JobGivenBack, nil
	case state == "running" && current > attempt:
		return JobNewerAttempt, nil
	default:
		return JobNotRunning, nil
	}
}

// NewerAttemptRunning says whether a later attempt than attempt is running
// River job jobID.
func NewerAttemptRunning(ctx context.Context, db DBTX, jobID int64, attempt int) (bool, error) {
	var running bool
	err := db.QueryRow(ctx, `SELECT state = 'running' AND attempt > $2 FROM river_job WHERE id = $1`, jobID, attempt).Scan(&running)
	if IsNoRows(err) {
		return false, nil
	}
	return running, err
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error { return s.Pool.Ping(ctx) }

// QueueDepth counts River jobs by state.
func (s *Store) QueueDepth(ctx context.Context) (map[string]int64, error) {
	rows, err := s.Pool.Query(ctx, "SELECT state::text, count(*) FROM river_job GROUP BY state")
	if err != nil {
		return nil, fmt.Errorf("queue depth: %w", err)
	}
	defer rows.Close()
	depth := map[string]int64{}
	for rows.Next() {
		var state string
		var n int64
		if err := rows.Scan(&state, &n); err != nil {
			return nil, fmt.Errorf("queue depth: %w", err)
		}
		depth[state] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("queue depth: %w", err)
	}
	return depth, nil
}

// OrphanRun is a queued or running run whose River job will not run it:
// the job ended (completed, cancelled or discarded) without the run's
// outcome, or it has been running for a while with the run never started
// (its worker died between fetching the job and starting the run).
type OrphanRun struct {
	ID, OrganizationID, ProvisionID uuid.UUID
	Status                          string
	JobID                           int64
	JobState                        string
}

// OrphanRuns lists such runs (at most 100).
func OrphanRuns(ctx context.Context, db DBTX, startGrace time.Duration) ([]OrphanRun, error) {
	rows, err := db.Query(ctx, `SELECT r.id, r.organization_id, r.provision_id, r.status, j.id, j.state::text
		FROM provision_runs r JOIN river_job j ON j.id = r.job_id
		WHERE r.status IN ('queued', 'running')
		  AND (j.state IN ('completed', 'cancelled', 'discarded')
		       OR (r.status = 'queued' AND j.state = 'running' AND j.attempted_at < now() - make_interval(secs => $1)))
		LIMIT 100`, startGrace.Seconds())
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []OrphanRun
	for rows.Next() {
		var o OrphanRun
		if err := rows.Scan(&o.ID, &o.OrganizationID, &o.ProvisionID, &o.Status, &o.JobID, &o.JobState); err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	return out, rows.Err()
}
