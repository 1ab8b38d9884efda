package placement

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/shardform/shardform/liveness"
	"github.com/shardform/shardform/store"
)

// A running drain proves its worker alive as a Terraform run does (package
// liveness): its job holds the session advisory lock drainLockName(id) in
// its worker process's liveness session while it moves instances. A
// drain whose job is running but whose lock is free lost its worker: the
// rescuer (RescueDrains, every few seconds in every worker process) makes
// the job available again at once, and the next attempt goes on from the
// moves still pending. A drain whose job ended without an outcome
// (cancelled in River UI, discarded, deleted) is ended, failed, by the
// rescuer and by every request that finds it in the way (a drain or
// migrate of its node, its cancel, its GET, an uncordon).

// DefaultRescueInterval is how often a worker process looks for drains of
// dead workers.
const DefaultRescueInterval = 5 * time.Second

// drainStartGrace is how long a drain's job may be running before a free
// liveness lock means a dead worker (a live worker takes it within
// milliseconds of fetching the job).
const drainStartGrace = 5 * time.Second

func drainLockName(id uuid.UUID) string { return "shardform-drain:" + id.String() }

// Watch runs the drain rescuer every interval until ctx ends (each worker
// process runs one), then closes this process's liveness session.
func (s *Service) Watch(ctx context.Context, interval time.Duration) error {
	if interval <= 0 {
		interval = DefaultRescueInterval
	}
	defer s.live.Close()
	liveness.Rescue(ctx, interval, func(ctx context.Context) (time.Duration, error) {
		_, err := s.RescueDrains(ctx)
		return 0, err
	}, func(err error) {
		s.log.ErrorContext(ctx, "drain rescuer failed: trying again", slog.Any("error", err), slog.Duration("retry_in", interval))
	})
	return nil
}

// RescueDrains ends the drains whose job ended without an outcome and
// makes the jobs of drains whose worker died available again. It answers
// how many drains it ended or retried.
func (s *Service) RescueDrains(ctx context.Context) (int, error) {
	suspects, err := store.SuspectDrains(ctx, s.st.Pool, drainStartGrace)
	if err != nil {
		return 0, fmt.Errorf("rescue drains: %w", err)
	}
	n := 0
	for _, d := range suspects {
		if d.JobState != "running" {
			ended, err := store.EndOrphanMigrations(ctx, s.st.Pool, d.OrganizationID, uuid.NullUUID{}, uuid.NullUUID{UUID: d.ID, Valid: true})
			if err != nil {
				return n, fmt.Errorf("rescue drain %s: %w", d.ID, err)
			}
			s.logEnded(ctx, d.OrganizationID, ended)
			n += len(ended)
			continue
		}
		retried, err := s.retryDead(ctx, d)
		if err != nil {
			return n, fmt.Errorf("rescue drain %s: %w", d.ID, err)
		}
		if retried {
			n++
		}
	}
	return n, nil
}

// retryDead makes a running drain's job available again when no live
// session holds the drain's lock.
func (s *Service) retryDead(ctx context.Context, d store.SuspectDrain) (bool, error) {
	retried := false
	err := s.st.InTx(ctx, func(tx pgx.Tx) error {
		// The lock taken here is this transaction's: the next attempt can
		// hold it once the job is available.
		free, err := liveness.Free(ctx, tx, drainLockName(d.ID))
		if err != nil || !free {
			return err
		}
		retried, err = store.RetryJob(ctx, tx, d.JobID, "the worker running this drain stopped (its liveness session ended): retried, from the moves still pending")
		return err
	})
	if retried {
		s.log.WarnContext(ctx, "drain of a dead worker retried", slog.String("migration_id", d.ID.String()),
			slog.Int64("job_id", d.JobID), slog.String("organization_id", d.OrganizationID.String()))
	}
	return retried, err
}

// endOrphans ends, in tx, the node's (or the migration's) drains whose
// job ended without an outcome.
func (s *Service) endOrphans(ctx context.Context, db store.DBTX, org uuid.UUID, node, id uuid.NullUUID) error {
	ended, err := store.EndOrphanMigrations(ctx, db, org, node, id)
	if err != nil {
		return fmt.Errorf("end drains whose job ended: %w", err)
	}
	s.logEnded(ctx, org, ended)
	return nil
}

func (s *Service) logEnded(ctx context.Context, org uuid.UUID, ended []uuid.UUID) {
	for _, id := range ended {
		s.log.WarnContext(ctx, "a drain's job ended without an outcome: the drain is ended", slog.String("migration_id", id.String()),
			slog.String("organization_id", org.String()))
	}
}
