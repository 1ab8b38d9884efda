package provision

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

// DefaultRescueInterval is how often a worker process looks for runs whose
// worker died (SHARDFORM_RUN_RESCUE_INTERVAL).
const DefaultRescueInterval = 5 * time.Second

// orphanStartGrace is how long a job may be running with its run not yet
// started before its worker is taken for dead (a live worker starts the
// run within milliseconds of fetching the job).
const orphanStartGrace = 15 * time.Second

// holderGoneGrace is how long a run's liveness lock must have been free
// before the rescuer retries the run. A worker that lost its liveness
// session while alive notices within a ping (livenessPing, and the ping's
// own timeout as long again), kills its Terraform at once and gives the job
// back itself; the rescuer leaves it that time and a margin, so two
// Terraform processes never work on the same infrastructure and the stale
// attempt's last write comes before the retry starts.
const holderGoneGrace = 2*livenessPing + time.Second

// Watch runs the rescuer every interval until ctx ends (each worker
// process runs one), then closes this process's liveness session. A run
// found without its holder is looked at again as soon as its
// holderGoneGrace is over, not a whole interval later.
func (s *Service) Watch(ctx context.Context, interval time.Duration) error {
	if interval <= 0 {
		interval = DefaultRescueInterval
	}
	defer s.live.Close()
	liveness.Rescue(ctx, interval, func(ctx context.Context) (time.Duration, error) {
		_, err := s.RescueRuns(ctx)
		if due, ok := s.rescueDue(); ok {
			return max(due.Sub(s.now()), 10*time.Millisecond), err
		}
		return 0, err
	}, func(err error) {
		s.log.ErrorContext(ctx, "run rescuer failed: trying again", slog.Any("error", err), slog.Duration("retry_in", interval))
	})
	return nil
}

// holderGone records when this rescuer first found run id's liveness lock
// free, and says whether that was holderGoneGrace ago or more.
func (s *Service) holderGone(id uuid.UUID, now time.Time) bool {
	s.goneMu.Lock()
	defer s.goneMu.Unlock()
	first, seen := s.gone[id]
	if !seen {
		s.gone[id] = now
		return false
	}
	return now.Sub(first) >= holderGoneGrace
}

// forgetGone drops what the rescuer noted about runs no longer running or
// whose holder is back (keep: the runs it saw free this time).
func (s *Service) forgetGone(keep map[uuid.UUID]bool) {
	s.goneMu.Lock()
	defer s.goneMu.Unlock()
	for id := range s.gone {
		if !keep[id] {
			delete(s.gone, id)
		}
	}
}

// rescueDue is the earliest time a run found without its holder may be
// retried; ok is false when there is none.
func (s *Service) rescueDue() (due time.Time, ok bool) {
	s.goneMu.Lock()
	defer s.goneMu.Unlock()
	for _, first := range s.gone {
		if d := first.Add(holderGoneGrace); !ok || d.Before(due) {
			due, ok = d, true
		}
	}
	return due, ok
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
	seenFree := map[uuid.UUID]bool{}
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
			seenFree[r.ID] = true
			if !s.holderGone(r.ID, s.now()) {
				continue // its worker may be alive still, stopping the run: see holderGoneGrace
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
	s.forgetGone(seenFree)
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
