package provision

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/shardform/shardform/store"
)

// DefaultRescueInterval is how often a worker process looks for runs whose
// worker died (SHARDFORM_RUN_RESCUE_INTERVAL).
const DefaultRescueInterval = 5 * time.Second

// orphanStartGrace is how long a job may be running with its run not yet
// started before its worker is taken for dead (a live worker starts the
// run within milliseconds of fetching the job).
const orphanStartGrace = 15 * time.Second

// Watch runs the rescuer every interval until ctx ends (each worker
// process runs one), then closes this process's liveness session.
func (s *Service) Watch(ctx context.Context, interval time.Duration) error {
	if interval <= 0 {
		interval = DefaultRescueInterval
	}
	defer s.live.Close()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := s.RescueRuns(ctx); err != nil && ctx.Err() == nil {
			s.log.ErrorContext(ctx, "run rescuer failed: trying again", slog.Any("error", err), slog.Duration("retry_in", interval))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// RescueRuns finds the running runs whose worker is gone (no session holds
// their liveness lock) and makes their jobs available again at once, the
// run back to queued, the dead attempt's state lock released; and ends the
// runs whose job ended without them (failed, with the request). It
// returns how many runs it rescued or ended.
func (s *Service) RescueRuns(ctx context.Context) (int, error) {
	type dead struct {
		org, provision, run uuid.UUID
		worker              string
	}
	var rescued []dead
	err := s.st.InTx(ctx, func(tx pgx.Tx) error {
		rows, err := s.q.RunningRuns(ctx, tx)
		if err != nil {
			return fmt.Errorf("running runs: %w", err)
		}
		for _, r := range rows {
			if !r.JobID.Valid {
				continue
			}
			free, err := s.q.TryRunHolder(ctx, tx, runLockName(r.ID))
			if err != nil {
				return fmt.Errorf("liveness of run %s: %w", r.ID, err)
			}
			if !free {
				continue // its worker is alive
			}
			reason := fmt.Sprintf("worker %s stopped during attempt %d (its liveness session ended): the run is retried", r.Worker, r.Attempt)
			ok, err := store.RetryJob(ctx, tx, r.JobID.Int64, reason)
			if err != nil {
				return fmt.Errorf("retry job %d of run %s: %w", r.JobID.Int64, r.ID, err)
			}
			if !ok {
				continue // not running: retrying already, or ended (see endOrphans)
			}
			if err := s.q.RequeueRun(ctx, tx, store.RequeueRunParams{ID: r.ID, Attempt: r.Attempt, Error: reason}); err != nil {
				return fmt.Errorf("requeue run %s: %w", r.ID, err)
			}
			rescued = append(rescued, dead{org: r.OrganizationID, provision: r.ProvisionID, run: r.ID, worker: r.Worker})
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	for _, d := range rescued {
		s.log.WarnContext(ctx, "run of a dead worker retried", slog.String("run_id", d.run.String()),
			slog.String("provision_id", d.provision.String()), slog.String("worker", d.worker))
		if s.state == nil {
			continue
		}
		if _, err := s.state.ReleaseProvisionRuns(ctx, d.org, d.provision); err != nil {
			return len(rescued), fmt.Errorf("release the state lock of run %s: %w", d.run, err)
		}
	}
	ended, err := s.endOrphans(ctx)
	return len(rescued) + ended, err
}

// endOrphans ends the runs no job will carry out: their job ended
// (discarded after its last attempt, cancelled, completed) without
// recording them, or it is running but the run never started (its worker
// died in between: the job is made available again).
func (s *Service) endOrphans(ctx context.Context) (int, error) {
	orphans, err := store.OrphanRuns(ctx, s.st.Pool, orphanStartGrace)
	if err != nil {
		return 0, fmt.Errorf("orphan runs: %w", err)
	}
	n := 0
	for _, o := range orphans {
		err := s.st.InTx(ctx, func(tx pgx.Tx) error {
			if o.JobState == "running" {
				free, err := s.q.TryRunHolder(ctx, tx, runLockName(o.ID))
				if err != nil || !free {
					return err
				}
				_, err = store.RetryJob(ctx, tx, o.JobID, "the worker stopped before starting the run: retried")
				return err
			}
			// Lock order: the request, then the run (as cancel does).
			r, err := s.q.GetProvisionRequestForUpdate(ctx, tx, store.GetProvisionRequestForUpdateParams{OrganizationID: o.OrganizationID, ID: o.ProvisionID})
			if err != nil {
				return err
			}
			run, err := s.q.GetRunForUpdate(ctx, tx, store.GetRunForUpdateParams{OrganizationID: o.OrganizationID, ID: o.ID})
			if err != nil || Finished(run.Status) {
				return err
			}
			msg := fmt.Sprintf("the run's job ended (%s) without an outcome", o.JobState)
			status := RunFailed
			if o.JobState == "cancelled" {
				status, msg = RunCancelled, "cancelled"
			}
			if _, err := s.q.EndRunNow(ctx, tx, store.EndRunNowParams{OrganizationID: o.OrganizationID, ID: o.ID, Status: status, Error: msg}); err != nil {
				return err
			}
			if r.Status == runningStatusOf(run.Kind) {
				to := StatusFailed
				if status == RunCancelled {
					to, msg = cancelledStatus(r)
					if run.Attempt == 0 {
						to = statusBefore(r)
					}
				}
				if err := s.q.SetProvisionStatus(ctx, tx, store.SetProvisionStatusParams{OrganizationID: r.OrganizationID, ID: r.ID, Status: to, Error: msg}); err != nil {
					return err
				}
			}
			n++
			return nil
		})
		if err != nil {
			return n, fmt.Errorf("end orphan run %s: %w", o.ID, err)
		}
	}
	return n, nil
}
