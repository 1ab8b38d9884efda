package provision

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/riverqueue/river"

	"github.com/shardform/shardform/credentials"
	"github.com/shardform/shardform/domain"
	"github.com/shardform/shardform/providers"
	"github.com/shardform/shardform/store"
	"github.com/shardform/shardform/terraform"
	"github.com/shardform/shardform/tfstate"
)

// Job identifies the request and the run a job works on.
type Job struct {
	OrganizationID uuid.UUID
	ProvisionID    uuid.UUID
	// RunID is the run the job carries out; uuid.Nil for a job inserted
	// before runs existed (the worker gives it a run).
	RunID       uuid.UUID
	Kind        string // the run's kind: plan, apply, destroy or refresh
	JobID       int64
	Attempt     int // River's attempt number, 1 on the first run
	MaxAttempts int // the job's last attempt: infrastructure errors then fail the run
	// Complete marks the job done inside tx (river.JobCompleteTx), so the
	// run's and request's final status and the job's completion commit
	// together: a request never looks finished while its job still looks
	// running.
	Complete func(ctx context.Context, tx pgx.Tx) error
}

// active is a run this process is working on.
type active struct {
	j       Job
	run     store.ProvisionRun
	r       store.ProvisionRequest
	d       providers.Driver
	logs    *logWriter
	ended   bool // the outcome is committed
	release func()
}

// outcome is how a run ends.
type outcome struct {
	status  string
	err     string
	exit    pgtype.Int4
	changes []byte
	drifted pgtype.Bool
	drift   []byte
}

// errRunTaken: another attempt holds the run now (this one's worker was
// taken for dead); this attempt records nothing.
var errRunTaken = errors.New("the run was taken over by another attempt")

func planContext(id uuid.UUID) string { return "plan:" + id.String() }

// begin takes the job's run for this attempt: its liveness lock (so a
// rescuer knows it is alive), then the run row (running, with this
// worker's name), then the request, which must be in status (the
// request's status while such a run runs). ok is false when there is
// nothing to do: the run has ended (cancelled before it started) or the
// request moved on. The returned context is cancelled should this
// worker's liveness session be lost.
func (s *Service) begin(ctx context.Context, j Job, status string) (context.Context, *active, bool, error) {
	if j.RunID == uuid.Nil {
		id, err := s.adoptJob(ctx, j)
		if err != nil {
			return ctx, nil, false, err
		}
		j.RunID = id
	}
	ctx, stop := context.WithCancelCause(ctx)
	release, err := s.live.Hold(ctx, runLockName(j.RunID), stop)
	if err != nil {
		stop(nil)
		return ctx, nil, false, fmt.Errorf("run %s: %w", j.RunID, err)
	}
	a := &active{j: j, release: func() { release(); stop(nil) }}
	version := ""
	if s.runner != nil {
		version = s.runner.Version()
	}
	a.run, err = s.q.StartRun(ctx, s.st.Pool, store.StartRunParams{
		OrganizationID: j.OrganizationID, ID: j.RunID, Attempt: int32(j.Attempt), Worker: s.worker,
		TerraformVersion: version, JobID: pgtype.Int8{Int64: j.JobID, Valid: j.JobID != 0},
	})
	if store.IsNoRows(err) {
		a.release()
		return ctx, nil, false, nil // ended, or held by a later attempt
	}
	if err != nil {
		a.release()
		return ctx, nil, false, fmt.Errorf("start run %s: %w", j.RunID, err)
	}
	a.r, err = s.q.GetProvisionRequest(ctx, s.st.Pool, store.GetProvisionRequestParams{OrganizationID: j.OrganizationID, ID: j.ProvisionID})
	if err != nil && !store.IsNoRows(err) {
		s.end(ctx, a)
		return ctx, nil, false, fmt.Errorf("load provision %s: %w", j.ProvisionID, err)
	}
	if err != nil || a.r.Status != status {
		// The request moved on (or is gone): the run has nothing to do.
		msg := "the provision request is gone"
		if err == nil {
			msg = fmt.Sprintf("the provision request is %s: nothing to %s", a.r.Status, a.run.Kind)
		}
		ferr := s.finish(ctx, a, outcome{status: RunCancelled, err: msg}, nil)
		s.end(ctx, a)
		return ctx, nil, false, ferr
	}
	a.logs = s.newLogWriter(ctx, a.r.ID, a.run.ID, a.run.Kind)
	if s.noTerraform != nil {
		err := s.fail(ctx, a, s.noTerraform)
		s.end(ctx, a)
		return ctx, nil, false, err
	}
	d, found := s.drivers.Get(a.r.Provider)
	if !found {
		err := s.fail(ctx, a, fmt.Errorf("provider %q is not configured on this worker", a.r.Provider))
		s.end(ctx, a)
		return ctx, nil, false, err
	}
	a.d = d
	return ctx, a, true, nil
}

// adoptJob gives a job inserted before runs existed a run of its own.
func (s *Service) adoptJob(ctx context.Context, j Job) (uuid.UUID, error) {
	var id uuid.UUID
	err := s.st.InTx(ctx, func(tx pgx.Tx) error {
		if run, err := s.q.ActiveRunOf(ctx, tx, store.ActiveRunOfParams{OrganizationID: j.OrganizationID, ProvisionID: j.ProvisionID}); err == nil {
			id = run.ID // adopted by an earlier attempt
			return nil
		} else if !store.IsNoRows(err) {
			return err
		}
		run, err := s.q.InsertRun(ctx, tx, store.InsertRunParams{OrganizationID: j.OrganizationID, ProvisionID: j.ProvisionID, Kind: j.Kind})
		if err != nil {
			return err
		}
		id = run.ID
		return s.q.SetRunJob(ctx, tx, store.SetRunJobParams{OrganizationID: j.OrganizationID, ID: run.ID, JobID: j.JobID})
	})
	if err != nil {
		return uuid.Nil, fmt.Errorf("give job %d of provision %s a run: %w", j.JobID, j.ProvisionID, err)
	}
	return id, nil
}

// end closes the run's log and gives its liveness lock back. A run whose
// outcome was not recorded (an infrastructure error River retries) goes
// back to queued first, so no rescuer takes it for one whose worker died.
func (s *Service) end(ctx context.Context, a *active) {
	if a.logs != nil {
		a.logs.Close()
	}
	if !a.ended {
		bg := context.WithoutCancel(ctx)
		if err := s.q.RequeueRun(bg, s.st.Pool, store.RequeueRunParams{ID: a.run.ID, Attempt: a.run.Attempt,
			Error: fmt.Sprintf("attempt %d did not finish: retrying", a.j.Attempt)}); err != nil {
			s.log.WarnContext(bg, "could not put an unfinished run back in the queue", slog.String("run_id", a.run.ID.String()), slog.Any("error", err))
		}
	}
	a.release()
}

// finish writes the outcome (the request's part with write, the run's
// with o) and completes the job, in one transaction.
func (s *Service) finish(ctx context.Context, a *active, o outcome, write func(tx pgx.Tx) error) error {
	// A run that got this far has an outcome to record, even when a cancel
	// or a shutdown arrives now.
	ctx = context.WithoutCancel(ctx)
	err := s.st.InTx(ctx, func(tx pgx.Tx) error {
		if write != nil {
			if err := write(tx); err != nil {
				return err
			}
		}
		_, err := s.q.FinishRun(ctx, tx, store.FinishRunParams{
			OrganizationID: a.j.OrganizationID, ID: a.run.ID, Attempt: a.run.Attempt, Status: o.status,
			ExitCode: o.exit, Error: o.err, Changes: o.changes, Drifted: o.drifted, Drift: o.drift,
		})
		if store.IsNoRows(err) {
			return errRunTaken
		}
		if err != nil {
			return fmt.Errorf("finish run %s: %w", a.run.ID, err)
		}
		if a.j.Complete == nil {
			return nil
		}
		if err := a.j.Complete(ctx, tx); err != nil {
			return fmt.Errorf("complete job of %s: %w", a.j.ProvisionID, err)
		}
		return nil
	})
	if errors.Is(err, errRunTaken) {
		a.ended = true // the other attempt owns it: nothing to put back
		s.log.WarnContext(ctx, "run taken over by another attempt: this attempt's outcome is dropped", slog.String("run_id", a.run.ID.String()))
		s.yield(ctx, a)
		return nil
	}
	if err == nil {
		a.ended = true
	}
	return err
}

// exitOf is the exit code err carries, when a Terraform command failed.
func exitOf(err error) pgtype.Int4 {
	if code, ok := terraform.ExitCode(err); ok {
		return pgtype.Int4{Int32: int32(code), Valid: true}
	}
	return pgtype.Int4{}
}

var exitOK = pgtype.Int4{Int32: 0, Valid: true}

// open renders the request's configuration and opens its workspace with a
// run credential of its own for the request's state (valid for this run
// only, revoked by done), and keeps the run's state lock leased while the
// run lasts; done releases the lock should Terraform have left it. A
// forced cancel kills the run's commands at once.
func (s *Service) open(ctx context.Context, a *active) (*terraform.Workspace, func(), error) {
	r := a.r
	cfg, err := s.render(ctx, r, a.d)
	if err != nil {
		return nil, nil, err
	}
	if s.state == nil {
		return nil, nil, errors.New("no Terraform state store configured on this worker")
	}
	stateID, err := s.state.ProvisionState(ctx, r.OrganizationID, r.ID)
	if err != nil {
		return nil, nil, fmt.Errorf("state of %s: %w", r.ID, err)
	}
	runID := a.run.ID
	if a.j.Attempt > 1 {
		// River runs a job again once its worker is taken for dead: that
		// worker's run cannot unlock the state, so its lock goes now, and
		// its credential with it.
		if n, err := s.state.ReleaseProvisionRuns(ctx, r.OrganizationID, r.ID); err != nil {
			return nil, nil, err
		} else if n > 0 {
			a.logs.Note("released the state lock of the attempt interrupted before this one")
		}
		if _, err := s.state.RevokeRunCredentials(ctx, runID); err != nil {
			return nil, nil, err
		}
	}
	user, pass, err := s.state.MintWorkerRunCredential(ctx, stateID, runID, s.worker, s.runTTL)
	if err != nil {
		return nil, nil, fmt.Errorf("state credential of %s: %w", r.ID, err)
	}
	stopLease := s.keepLease(ctx, runID)
	force, stopForce := s.watchForce(ctx, runID)
	done := func() {
		stopForce()
		stopLease()
		bg := context.WithoutCancel(ctx)
		if n, err := s.state.ReleaseRun(bg, runID); err != nil || n > 0 {
			s.log.WarnContext(bg, "state lock left by a run released", slog.String("provision_id", r.ID.String()), slog.Int64("locks", n), slog.Any("error", err))
		}
		if _, err := s.state.RevokeRunCredentials(bg, runID); err != nil {
			s.log.ErrorContext(bg, "could not revoke a run's state credential", slog.String("provision_id", r.ID.String()), slog.Any("error", err))
		}
	}
	ws, err := s.runner.Open(ctx, r.ID.String(), cfg, a.logs, tfstate.BackendEnv(s.stateBase, tfstate.Target{ProvisionID: r.ID}, user, pass))
	if err != nil {
		done()
		return nil, nil, err
	}
	ws.ForceOn(force)
	return ws, done, nil
}

// keepLease renews the run's state lock every third of the lease until
// stop is called, so a live run keeps it and a dead one loses it soon.
func (s *Service) keepLease(ctx context.Context, runID uuid.UUID) (stop func()) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	lease := s.state.LockLease()
	go func() {
		t := time.NewTicker(lease / 3)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if _, err := s.state.Renew(ctx, runID, s.now().Add(lease)); err != nil && ctx.Err() == nil {
					s.log.WarnContext(ctx, "could not renew a run's state lock", slog.String("run_id", runID.String()), slog.Any("error", err))
				}
			}
		}
	}()
	return cancel
}

// forcePoll is how often a cancelled run checks whether the cancel was
// made a forced one.
const forcePoll = 250 * time.Millisecond

// watchForce returns a context that ends when the run is cancelled with
// force (POST .../cancel?force=true, at once or after a plain cancel), or
// when this worker lost its liveness session: its commands are then killed
// without the grace period. A run whose liveness is lost may be retried by
// another worker a few seconds later (RescueRuns waits holderGoneGrace), so
// its Terraform must not go on for a grace period beside the retry's.
// stop ends the watch.
func (s *Service) watchForce(ctx context.Context, runID uuid.UUID) (context.Context, func()) {
	force, kill := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		select {
		case <-done:
			return
		case <-ctx.Done():
		}
		if errors.Is(context.Cause(ctx), ErrLivenessLost) {
			kill()
			return
		}
		if !errors.Is(context.Cause(ctx), river.ErrJobCancelledRemotely) {
			return
		}
		t := time.NewTicker(forcePoll)
		defer t.Stop()
		for {
			mode, err := s.q.RunCancelRequested(force, s.st.Pool, runID)
			if err == nil && mode == "force" {
				kill()
				return
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return force, func() { close(done); kill() }
}

// variables opens the request's credential for a driver that needs one and
// returns the sensitive Terraform variables made from it.
// mint: a plan's, with a fresh registration token when nodes join.
func (s *Service) variables(ctx context.Context, r store.ProvisionRequest, d providers.Driver, mint bool) (map[string]string, error) {
	cd, ok := d.(providers.Credentialed)
	if !ok {
		return s.joinVariable(ctx, r, d, nil, mint)
	}
	if !r.CredentialID.Valid {
		return nil, fmt.Errorf("the request's %s credential was deleted: create a new provision request with another credential", cd.CredentialProvider())
	}
	row, err := s.q.GetCredential(ctx, s.st.Pool, store.GetCredentialParams{OrganizationID: r.OrganizationID, ID: r.CredentialID.UUID})
	if store.IsNoRows(err) {
		return nil, fmt.Errorf("the request's credential %s was deleted", r.CredentialID.UUID)
	}
	if err != nil {
		return nil, fmt.Errorf("load credential of %s: %w", r.ID, err)
	}
	secret, err := credentials.Open(s.sealer, row)
	if err != nil {
		return nil, err
	}
	return s.joinVariable(ctx, r, d, cd.Variables(secret), mint)
}

// fail records a failure with Terraform's message (the full log stays in
// provision_logs): the run fails, and so does the request, but for a
// refresh, which leaves an applied request applied.
func (s *Service) fail(ctx context.Context, a *active, cause error) error {
	msg := tail(cause.Error(), 4000)
	bg := context.WithoutCancel(ctx)
	a.logs.Note("failed: " + msg)
	var write func(tx pgx.Tx) error
	if a.run.Kind != RunRefresh {
		write = func(tx pgx.Tx) error {
			return s.q.SetProvisionStatus(bg, tx, store.SetProvisionStatusParams{OrganizationID: a.r.OrganizationID, ID: a.r.ID, Status: StatusFailed, Error: msg})
		}
	}
	if err := s.finish(bg, a, outcome{status: RunFailed, err: msg, exit: exitOf(cause)}, write); err != nil {
		return fmt.Errorf("record failure of %s: %w (after: %v)", a.r.ID, err, cause)
	}
	return nil
}

// tail is the end of s, at most n bytes of it (cut at a rune boundary),
// marked "…" when cut: Terraform's last words say most.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	t := s[len(s)-n:]
	for len(t) > 0 && !utf8.RuneStart(t[0]) {
		t = t[1:]
	}
	return "…" + t
}

// failOrRetry: a run cancelled by the user ends cancelled; a cancelled
// context otherwise (worker shutting down, job timeout, liveness lost) is
// returned for River to retry, unless this was the last attempt; anything
// else is Terraform's verdict and ends the run failed.
func (s *Service) failOrRetry(ctx context.Context, a *active, err error) error {
	if errors.Is(context.Cause(ctx), river.ErrJobCancelledRemotely) {
		return s.cancelled(ctx, a, err)
	}
	if errors.Is(context.Cause(ctx), ErrLivenessLost) && a.j.Attempt < a.j.MaxAttempts {
		return s.handBack(ctx, a, err)
	}
	if ctx.Err() != nil && a.j.Attempt < a.j.MaxAttempts {
		a.logs.Note(fmt.Sprintf("attempt %d interrupted (%v): River retries the run", a.j.Attempt, context.Cause(ctx)))
		return err
	}
	return s.fail(ctx, a, err)
}

// lostRetryDelay is how long after a liveness loss the attempt's job waits
// before River runs it again: River's completer writes the stale
// attempt's end just after, and must find the job not running yet.
const lostRetryDelay = time.Second

// handBack ends an attempt whose worker lost its liveness session (its
// Terraform was killed at once, see watchForce): the job goes back to
// River for a retry, written here only while the job is still this
// attempt's; River's own write after Work returns then finds it not running
// and changes nothing. Should a rescuer have retried the run already, the
// attempt waits for the newer one to end first (yield).
func (s *Service) handBack(ctx context.Context, a *active, cause error) error {
	bg := context.WithoutCancel(ctx)
	a.logs.Note(fmt.Sprintf("attempt %d interrupted (%v): River retries the run", a.j.Attempt, context.Cause(ctx)))
	if a.j.JobID == 0 {
		return cause
	}
	reason := fmt.Sprintf("worker %s lost its liveness session during attempt %d: the run is retried", s.worker, a.j.Attempt)
	deadline := s.now().Add(yieldLimit)
	for {
		holder, err := store.GiveBackJob(bg, s.st.Pool, a.j.JobID, a.j.Attempt, reason, s.now().Add(lostRetryDelay))
		switch {
		case err == nil && holder == store.JobGivenBack:
			if rerr := s.q.RequeueRun(bg, s.st.Pool, store.RequeueRunParams{ID: a.run.ID, Attempt: a.run.Attempt, Error: reason}); rerr != nil {
				s.log.WarnContext(bg, "could not put an interrupted run back in the queue", slog.String("run_id", a.run.ID.String()), slog.Any("error", rerr))
			} else {
				a.ended = true
			}
			return cause
		case err == nil && holder == store.JobNotRunning:
			return cause
		case err == nil:
			a.ended = true // a newer attempt holds the run
			s.yield(ctx, a)
			return cause
		}
		// Postgres is out of reach (the likely reason the session was
		// lost): try again until it answers.
		if !s.now().Before(deadline) {
			s.log.ErrorContext(bg, "could not give an interrupted run's job back", slog.String("run_id", a.run.ID.String()), slog.Any("error", err))
			return cause
		}
		time.Sleep(livenessPing)
	}
}

// yieldLimit bounds how long a stale attempt waits for a newer one.
const yieldLimit = time.Hour

// yield waits, when a newer attempt runs this attempt's job, for that
// attempt to end: once this one returns, River's completer sets the job's
// state wherever it is running, and would overwrite the newer attempt's.
func (s *Service) yield(ctx context.Context, a *active) {
	if a.j.JobID == 0 {
		return
	}
	bg := context.WithoutCancel(ctx)
	deadline := s.now().Add(yieldLimit)
	logged := false
	for s.now().Before(deadline) {
		newer, err := store.NewerAttemptRunning(bg, s.st.Pool, a.j.JobID, a.j.Attempt)
		if err == nil && !newer {
			return
		}
		if !logged {
			s.log.WarnContext(bg, "a newer attempt runs this job: waiting for it to end before returning", slog.String("run_id", a.run.ID.String()), slog.Int64("job_id", a.j.JobID))
			logged = true
		}
		time.Sleep(livenessPing)
	}
}

// retryOrFail is for an infrastructure error (Postgres, the sealer): River
// retries the run, but on its last attempt the run fails with the error.
func (s *Service) retryOrFail(ctx context.Context, a *active, err error) error {
	if a.j.Attempt < a.j.MaxAttempts {
		return err
	}
	return s.fail(ctx, a, err)
}

// cancelled records a run interrupted by Cancel: a plan or a refresh
// changes nothing (the request goes back to pending or planned, or stays
// applied); an apply or a destroy may have changed some resources
// (failed, saying so).
func (s *Service) cancelled(ctx context.Context, a *active, cause error) error {
	status, msg := cancelledStatus(a.r)
	bg := context.WithoutCancel(ctx) // the run's own context is cancelled
	a.logs.Note(msg)
	return s.finish(bg, a, outcome{status: RunCancelled, err: msg, exit: exitOf(cause)}, func(tx pgx.Tx) error {
		return s.q.SetProvisionStatus(bg, tx, store.SetProvisionStatusParams{OrganizationID: a.r.OrganizationID, ID: a.r.ID, Status: status, Error: msg})
	})
}

// RunPlan runs terraform plan for a request in planning and stores the
// sealed plan file and its summary. Terraform failures end the request
// failed (not retried); infrastructure errors are returned for River to retry.
func (s *Service) RunPlan(ctx context.Context, j Job) error {
	ctx, a, ok, err := s.begin(ctx, j, StatusPlanning)
	if !ok || err != nil {
		return err
	}
	defer s.end(ctx, a)
	ws, done, err := s.open(ctx, a)
	if err != nil {
		return s.failOrRetry(ctx, a, err)
	}
	defer done()
	vars, err := s.variables(ctx, a.r, a.d, true)
	if err != nil {
		return s.failOrRetry(ctx, a, err)
	}
	plan, err := ws.Plan(ctx, vars, false)
	if err != nil {
		return s.failOrRetry(ctx, a, err)
	}
	sealed, err := s.sealer.Seal(plan.File, planContext(a.r.ID))
	if err != nil {
		return s.retryOrFail(ctx, a, err)
	}
	summary, _ := json.Marshal(plan.Summary)
	err = s.finish(ctx, a, outcome{status: RunSucceeded, exit: exitOK, changes: summary}, func(tx pgx.Tx) error {
		if err := s.q.SetProvisionPlanned(ctx, tx, store.SetProvisionPlannedParams{OrganizationID: a.r.OrganizationID, ID: a.r.ID, PlanSummary: summary, PlanFile: sealed}); err != nil {
			return fmt.Errorf("store plan of %s: %w", a.r.ID, err)
		}
		if err := s.q.SetRunPlanFile(ctx, tx, store.SetRunPlanFileParams{OrganizationID: a.r.OrganizationID, ID: a.run.ID, PlanFile: sealed}); err != nil {
			return fmt.Errorf("store plan of run %s: %w", a.run.ID, err)
		}
		if err := s.q.SetProvisionPlanRun(ctx, tx, store.SetProvisionPlanRunParams{OrganizationID: a.r.OrganizationID, ID: a.r.ID, PlanRunID: uuid.NullUUID{UUID: a.run.ID, Valid: true}}); err != nil {
			return err
		}
		// This plan supersedes the request's earlier ones: their saved
		// plans go.
		if _, err := store.ClearSpentPlanFiles(ctx, tx, a.r.OrganizationID, a.r.ID, a.run.ID); err != nil {
			return fmt.Errorf("drop superseded plans of %s: %w", a.r.ID, err)
		}
		return s.queueRenderTx(ctx, tx, a.r.OrganizationID, a.run.ID)
	})
	if err == nil && a.ended {
		s.autoApply(ctx, a)
	}
	return err
}

// RunApply applies the saved plan and registers the node in the same
// transaction that marks the request applied. On a retry after a crash the
// saved plan may be stale (the first attempt changed state): then the
// request is re-planned and applied, converging on the configuration the
// user approved, and the node row (unique per request) is written once.
func (s *Service) RunApply(ctx context.Context, j Job) error {
	ctx, a, ok, err := s.begin(ctx, j, StatusApplying)
	if !ok || err != nil {
		return err
	}
	defer s.end(ctx, a)
	r, d := a.r, a.d
	// A resize must still fit the node's instances: checked again before
	// Terraform changes the machine.
	if err := s.checkApplyFit(ctx, r); errors.Is(err, domain.ErrConflict) {
		return s.refuseApply(ctx, a, err)
	} else if err != nil {
		return s.retryOrFail(ctx, a, err)
	}
	ws, done, err := s.open(ctx, a)
	if err != nil {
		return s.failOrRetry(ctx, a, err)
	}
	defer done()
	// The node may join from now on (its token was minted by the plan).
	if err := s.activateJoin(ctx, r, d); err != nil {
		return s.failOrRetry(ctx, a, err)
	}
	plan, err := s.sealer.Open(r.PlanFile, planContext(r.ID))
	if err != nil {
		return s.fail(ctx, a, fmt.Errorf("saved plan unreadable: plan again (%w)", err))
	}
	// A saved plan carries its variable values (that is why it is sealed):
	// apply needs none, but a re-plan does.
	err = ws.Apply(ctx, plan, nil)
	if errors.Is(err, terraform.ErrStalePlan) && j.Attempt > 1 {
		a.logs.Note("saved plan is stale after an interrupted attempt: planning again to converge")
		var fresh terraform.Plan
		vars, verr := s.variables(ctx, r, d, true)
		if verr != nil {
			return s.failOrRetry(ctx, a, verr)
		}
		if fresh, err = ws.Plan(ctx, vars, false); err == nil {
			err = ws.Apply(ctx, fresh.File, nil)
		}
	}
	if err != nil {
		return s.failOrRetry(ctx, a, err)
	}
	outs, err := ws.Outputs(ctx)
	if err != nil {
		return s.failOrRetry(ctx, a, err)
	}
	node, err := d.Node(outs)
	if err != nil {
		return s.fail(ctx, a, err)
	}
	it, found := providers.FindInstanceType(d, r.InstanceType)
	if !found || it.VCPU <= 0 || it.MemoryMB <= 0 || it.DiskGB <= 0 {
		// Never register a node of unknown size: zero capacity would make
		// placement refuse everything on it, silently.
		return s.fail(ctx, a, fmt.Errorf("the server was created but not registered as a node: instance type %q is not in this worker's %s catalog (or has no capacity there), so its capacity is unknown: destroy this request, or add the type to the catalog and plan again", r.InstanceType, r.Provider))
	}
	// An apply of an existing node may have powered it on or off (the aws
	// provider starts a stopped instance to change its type): record what
	// its cloud says now.
	power := s.appliedPowerState(ctx, a, r)
	err = s.finish(ctx, a, outcome{status: RunSucceeded, exit: exitOK, changes: r.PlanSummary}, func(tx pgx.Tx) error {
		// The request first, then its node: the order a change of the
		// node's configuration (resize, firewall) takes them in.
		if _, err := s.q.GetProvisionRequestForUpdate(ctx, tx, store.GetProvisionRequestForUpdateParams{OrganizationID: r.OrganizationID, ID: r.ID}); err != nil {
			return fmt.Errorf("register node of %s: %w", r.ID, err)
		}
		n, err := s.q.InsertNodeOnce(ctx, tx, store.InsertNodeOnceParams{
			OrganizationID: r.OrganizationID, ProvisionID: uuid.NullUUID{UUID: r.ID, Valid: true},
			Name: r.Name, Provider: r.Provider, Region: r.Region, InstanceType: r.InstanceType,
			Vcpu: int32(it.VCPU), MemoryMb: int32(it.MemoryMB), DiskGb: int32(it.DiskGB),
			Ipv4: node.IPv4, Ipv6: node.IPv6, ServerID: node.ServerID, Labels: r.Labels,
		})
		if err != nil {
			return fmt.Errorf("register node of %s: %w", r.ID, err)
		}
		if err := s.nodeRegistered(ctx, tx, n); err != nil {
			return err
		}
		if power != "" {
			if err := s.q.SetNodePowerState(ctx, tx, store.SetNodePowerStateParams{OrganizationID: r.OrganizationID, ID: n.ID, PowerState: power}); err != nil {
				return fmt.Errorf("record the power state of node %s: %w", n.ID, err)
			}
		}
		// Applied: no saved plan of the request is needed any more.
		if _, err := store.ClearSpentPlanFiles(ctx, tx, r.OrganizationID, r.ID, uuid.Nil); err != nil {
			return fmt.Errorf("drop applied plans of %s: %w", r.ID, err)
		}
		return s.q.SetProvisionApplied(ctx, tx, store.SetProvisionAppliedParams{OrganizationID: r.OrganizationID, ID: r.ID, NodeID: uuid.NullUUID{UUID: n.ID, Valid: true}})
	})
	if err == nil {
		// Applied: the node may join for JoinWindow more, no longer.
		if cerr := s.closeJoin(ctx, r, d); cerr != nil {
			s.log.ErrorContext(ctx, "narrow the registration token's window", slog.String("provision_id", r.ID.String()), slog.Any("error", cerr))
		}
	}
	return err
}

// RunDestroy destroys the request's resources and removes its node.
func (s *Service) RunDestroy(ctx context.Context, j Job) error {
	ctx, a, ok, err := s.begin(ctx, j, StatusDestroying)
	if !ok || err != nil {
		return err
	}
	defer s.end(ctx, a)
	r := a.r
	ws, done, err := s.open(ctx, a)
	if err != nil {
		return s.failOrRetry(ctx, a, err)
	}
	defer done()
	vars, err := s.variables(ctx, r, a.d, false)
	if err != nil {
		return s.failOrRetry(ctx, a, err)
	}
	if err := ws.Destroy(ctx, vars); err != nil {
		return s.failOrRetry(ctx, a, err)
	}
	err = s.finish(ctx, a, outcome{status: RunSucceeded, exit: exitOK}, func(tx pgx.Tx) error {
		if err := s.nodeRemoved(ctx, tx, r.OrganizationID, r.ID); err != nil {
			return err
		}
		if err := s.q.DeleteNodeOfProvision(ctx, tx, store.DeleteNodeOfProvisionParams{OrganizationID: r.OrganizationID, ProvisionID: uuid.NullUUID{UUID: r.ID, Valid: true}}); err != nil {
			return fmt.Errorf("remove node of %s: %w", r.ID, err)
		}
		// Destroyed: no plan of the request can be applied any more.
		if _, err := store.ClearSpentPlanFiles(ctx, tx, r.OrganizationID, r.ID, uuid.Nil); err != nil {
			return fmt.Errorf("drop plans of %s: %w", r.ID, err)
		}
		return s.q.SetProvisionDestroyed(ctx, tx, store.SetProvisionDestroyedParams{OrganizationID: r.OrganizationID, ID: r.ID})
	})
	if err != nil {
		return err
	}
	if err := ws.Remove(); err != nil {
		s.log.WarnContext(ctx, "could not remove workspace directory", slog.String("provision_id", r.ID.String()), slog.Any("error", err))
	}
	return nil
}

// RunRefresh checks an applied request for drift: `plan -refresh-only
// -detailed-exitcode` reads every resource from its provider; when
// something drifted, the refresh plan is rendered (show -json, masked) to
// say which attributes changed. The request stays applied.
func (s *Service) RunRefresh(ctx context.Context, j Job) error {
	ctx, a, ok, err := s.begin(ctx, j, StatusApplied)
	if !ok || err != nil {
		return err
	}
	defer s.end(ctx, a)
	ws, done, err := s.open(ctx, a)
	if err != nil {
		return s.failOrRetry(ctx, a, err)
	}
	defer done()
	vars, err := s.variables(ctx, a.r, a.d, false)
	if err != nil {
		return s.failOrRetry(ctx, a, err)
	}
	d, err := ws.Refresh(ctx, vars)
	if err != nil {
		return s.failOrRetry(ctx, a, err)
	}
	report := make([]DriftedChange, 0, len(d.Resources))
	code := exitOK
	if d.Drifted {
		code = pgtype.Int4{Int32: 2, Valid: true}
		rendered, err := ws.ShowPlan(ctx, d.Plan)
		if err != nil {
			return s.failOrRetry(ctx, a, err)
		}
		for _, c := range rendered.Drift {
			attrs := terraform.ChangedAttributes(c.Before, c.After)
			if len(attrs) == 0 && c.Action == "update" {
				continue // only a null read back as an empty value: no one changed it
			}
			report = append(report, DriftedChange{Address: c.Address, Type: c.Type, Action: c.Action, Attributes: attrs, Before: c.Before, After: c.After})
		}
	}
	drifted := len(report) > 0
	if drifted {
		a.logs.Note(fmt.Sprintf("drift: %d resource(s) changed outside Terraform", len(report)))
	} else {
		a.logs.Note("no drift: the infrastructure matches the state")
	}
	drift, _ := json.Marshal(report)
	return s.finish(ctx, a, outcome{status: RunSucceeded, exit: code, drifted: pgtype.Bool{Bool: drifted, Valid: true}, drift: drift}, nil)
}

// logWriter appends Terraform's output to provision_logs line by line, so
// followers see it while the run goes on.
type logWriter struct {
	ctx       context.Context
	s         *Service
	id        uuid.UUID // the request
	run       uuid.UUID
	operation string
	mu        sync.Mutex
	buf       bytes.Buffer // a partial line
	pending   bytes.Buffer // complete lines not stored yet
	timer     *time.Timer  // the scheduled flush of pending; nil when none
}

// logBatchDelay is how long complete lines wait to be stored together: a
// command's burst of lines (one per message of Terraform's -json stream)
// becomes one statement, and a live follower sees them that much later.
const logBatchDelay = 20 * time.Millisecond

func (s *Service) newLogWriter(ctx context.Context, id, run uuid.UUID, operation string) *logWriter {
	w := &logWriter{ctx: context.WithoutCancel(ctx), s: s, id: id, run: run, operation: operation}
	w.Note("=== " + operation + " ===")
	return w
}

// Write buffers output; complete lines are stored in batches.
func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if i := bytes.LastIndexByte(w.buf.Bytes(), '\n'); i >= 0 {
		w.pending.Write(w.buf.Next(i + 1))
		if w.timer == nil {
			w.timer = time.AfterFunc(logBatchDelay, w.flush)
		}
	}
	return len(p), nil
}

// Flush stores the pending lines now: the terraform runner calls it when a
// command ends, so every line of a run is stored before its status moves
// (a follower that sees the final status has seen every line).
func (w *logWriter) Flush() { w.flush() }

// flush stores the pending lines in one statement.
func (w *logWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.flushLocked()
}

func (w *logWriter) flushLocked() {
	if w.timer != nil {
		w.timer.Stop()
		w.timer = nil
	}
	if w.pending.Len() > 0 {
		w.append(w.pending.String())
		w.pending.Reset()
	}
}

// Note adds a line of shardform's own, after everything written before it.
func (w *logWriter) Note(line string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.flushLocked()
	w.append("[shardform] " + line + "\n")
}

func (w *logWriter) append(chunk string) {
	if err := w.s.q.AppendRunLog(w.ctx, w.s.st.Pool, store.AppendRunLogParams{ProvisionID: w.id, RunID: uuid.NullUUID{UUID: w.run, Valid: true}, Operation: w.operation, Chunk: chunk}); err != nil {
		w.s.log.ErrorContext(w.ctx, "could not store Terraform output", slog.String("provision_id", w.id.String()), slog.Any("error", err))
	}
}

// Close stores what is pending and a last partial line.
func (w *logWriter) Close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.flushLocked()
	if w.buf.Len() > 0 {
		w.append(w.buf.String())
		w.buf.Reset()
	}
}
