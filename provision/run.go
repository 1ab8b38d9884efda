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

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/shardform/shardform/credentials"
	"github.com/shardform/shardform/providers"
	"github.com/shardform/shardform/store"
	"github.com/shardform/shardform/terraform"
	"github.com/shardform/shardform/tfstate"
)

// Job identifies the request a job works on.
type Job struct {
	OrganizationID uuid.UUID
	ProvisionID    uuid.UUID
	Attempt        int // River's attempt number, 1 on the first run
	// Complete marks the job done inside tx (river.JobCompleteTx), so the
	// request's final status and the job's completion commit together: a
	// request never looks finished while its job still looks running.
	Complete func(ctx context.Context, tx pgx.Tx) error
}

// finish writes the outcome and completes the job in one transaction.
func (s *Service) finish(ctx context.Context, j Job, write func(tx pgx.Tx) error) error {
	// A run that got this far has an outcome to record, even when a cancel
	// or a shutdown arrives now.
	ctx = context.WithoutCancel(ctx)
	return s.st.InTx(ctx, func(tx pgx.Tx) error {
		if err := write(tx); err != nil {
			return err
		}
		if j.Complete == nil {
			return nil
		}
		if err := j.Complete(ctx, tx); err != nil {
			return fmt.Errorf("complete job of %s: %w", j.ProvisionID, err)
		}
		return nil
	})
}

func planContext(id uuid.UUID) string { return "plan:" + id.String() }

// load reads the request and its driver; ok is false when the request is
// no longer in the status the job expects (nothing to do).
func (s *Service) load(ctx context.Context, j Job, status string) (store.ProvisionRequest, providers.Driver, bool, error) {
	r, err := s.q.GetProvisionRequest(ctx, s.st.Pool, store.GetProvisionRequestParams{OrganizationID: j.OrganizationID, ID: j.ProvisionID})
	if store.IsNoRows(err) {
		return r, nil, false, nil
	}
	if err != nil {
		return r, nil, false, fmt.Errorf("load provision %s: %w", j.ProvisionID, err)
	}
	if r.Status != status {
		return r, nil, false, nil
	}
	if s.noTerraform != nil {
		return r, nil, false, s.fail(ctx, j, r, s.noTerraform)
	}
	d, ok := s.drivers.Get(r.Provider)
	if !ok {
		return r, nil, false, s.fail(ctx, j, r, fmt.Errorf("provider %q is not configured on this worker", r.Provider))
	}
	return r, d, true, nil
}

// open renders the request's configuration and opens its workspace with a
// run credential of its own for the request's state (valid for this run
// only, revoked by done), and keeps the run's state lock leased while the
// run lasts; done releases the lock should Terraform have left it.
func (s *Service) open(ctx context.Context, j Job, r store.ProvisionRequest, d providers.Driver, logs *logWriter) (*terraform.Workspace, func(), error) {
	var labels map[string]string
	if err := json.Unmarshal(r.Labels, &labels); err != nil {
		// Rendering without them would build a machine without its labels.
		return nil, nil, fmt.Errorf("stored labels of provision request %s are unreadable: %w", r.ID, err)
	}
	cfg, err := d.Render(providers.Request{ID: r.ID.String(), Name: r.Name, Region: r.Region, InstanceType: r.InstanceType, Image: r.Image, SSHKeys: r.SshKeys, Labels: labels})
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
	if j.Attempt > 1 {
		// River runs a job again once its worker is taken for dead: that
		// worker's run cannot unlock the state, so its lock goes now.
		if n, err := s.state.ReleaseProvisionRuns(ctx, r.OrganizationID, r.ID); err != nil {
			return nil, nil, err
		} else if n > 0 {
			logs.Note("released the state lock of the run interrupted before this attempt")
		}
	}
	runID := uuid.New()
	user, pass, err := s.state.MintRunCredential(ctx, stateID, runID, s.runTTL)
	if err != nil {
		return nil, nil, fmt.Errorf("state credential of %s: %w", r.ID, err)
	}
	stopLease := s.keepLease(ctx, runID)
	done := func() {
		stopLease()
		bg := context.WithoutCancel(ctx)
		if n, err := s.state.ReleaseRun(bg, runID); err != nil || n > 0 {
			s.log.WarnContext(bg, "state lock left by a run released", slog.String("provision_id", r.ID.String()), slog.Int64("locks", n), slog.Any("error", err))
		}
		if _, err := s.state.RevokeRunCredentials(bg, runID); err != nil {
			s.log.ErrorContext(bg, "could not revoke a run's state credential", slog.String("provision_id", r.ID.String()), slog.Any("error", err))
		}
	}
	ws, err := s.runner.Open(ctx, r.ID.String(), cfg, logs, tfstate.BackendEnv(s.stateBase, tfstate.Target{ProvisionID: r.ID}, user, pass))
	if err != nil {
		done()
		return nil, nil, err
	}
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

// variables opens the request's credential for a driver that needs one and
// returns the sensitive Terraform variables made from it.
func (s *Service) variables(ctx context.Context, r store.ProvisionRequest, d providers.Driver) (map[string]string, error) {
	cd, ok := d.(providers.Credentialed)
	if !ok {
		return nil, nil
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
	return cd.Variables(secret), nil
}

// fail records a failure with Terraform's message; the full log stays in provision_logs.
func (s *Service) fail(ctx context.Context, j Job, r store.ProvisionRequest, cause error) error {
	msg := cause.Error()
	if len(msg) > 4000 {
		msg = "…" + msg[len(msg)-4000:]
	}
	bg := context.WithoutCancel(ctx)
	err := s.finish(bg, j, func(tx pgx.Tx) error {
		return s.q.SetProvisionStatus(bg, tx, store.SetProvisionStatusParams{OrganizationID: r.OrganizationID, ID: r.ID, Status: StatusFailed, Error: msg})
	})
	if err != nil {
		return fmt.Errorf("record failure of %s: %w (after: %v)", r.ID, err, cause)
	}
	return nil
}

// RunPlan runs terraform plan for a request in planning and stores the
// sealed plan file and its summary. Terraform failures end the request
// failed (not retried); infrastructure errors are returned for River to retry.
func (s *Service) RunPlan(ctx context.Context, j Job) error {
	r, d, ok, err := s.load(ctx, j, StatusPlanning)
	if !ok || err != nil {
		return err
	}
	logs := s.newLogWriter(ctx, r.ID, "plan")
	defer logs.Close()
	ws, done, err := s.open(ctx, j, r, d, logs)
	if err != nil {
		return s.failOrRetry(ctx, j, r, err)
	}
	defer done()
	vars, err := s.variables(ctx, r, d)
	if err != nil {
		return s.failOrRetry(ctx, j, r, err)
	}
	plan, err := ws.Plan(ctx, vars, false)
	if err != nil {
		return s.failOrRetry(ctx, j, r, err)
	}
	sealed, err := s.sealer.Seal(plan.File, planContext(r.ID))
	if err != nil {
		return err
	}
	summary, _ := json.Marshal(plan.Summary)
	return s.finish(ctx, j, func(tx pgx.Tx) error {
		if err := s.q.SetProvisionPlanned(ctx, tx, store.SetProvisionPlannedParams{OrganizationID: r.OrganizationID, ID: r.ID, PlanSummary: summary, PlanFile: sealed}); err != nil {
			return fmt.Errorf("store plan of %s: %w", r.ID, err)
		}
		return nil
	})
}

// RunApply applies the saved plan and registers the node in the same
// transaction that marks the request applied. On a retry after a crash the
// saved plan may be stale (the first attempt changed state): then the
// request is re-planned and applied, converging on the configuration the
// user approved, and the node row (unique per request) is written once.
func (s *Service) RunApply(ctx context.Context, j Job) error {
	r, d, ok, err := s.load(ctx, j, StatusApplying)
	if !ok || err != nil {
		return err
	}
	logs := s.newLogWriter(ctx, r.ID, "apply")
	defer logs.Close()
	ws, done, err := s.open(ctx, j, r, d, logs)
	if err != nil {
		return s.failOrRetry(ctx, j, r, err)
	}
	defer done()
	plan, err := s.sealer.Open(r.PlanFile, planContext(r.ID))
	if err != nil {
		return s.fail(ctx, j, r, fmt.Errorf("saved plan unreadable: plan again (%w)", err))
	}
	// A saved plan carries its variable values (that is why it is sealed):
	// apply needs none, but a re-plan does.
	err = ws.Apply(ctx, plan, nil)
	if errors.Is(err, terraform.ErrStalePlan) && j.Attempt > 1 {
		logs.Note("saved plan is stale after an interrupted attempt: planning again to converge")
		var fresh terraform.Plan
		vars, verr := s.variables(ctx, r, d)
		if verr != nil {
			return s.failOrRetry(ctx, j, r, verr)
		}
		if fresh, err = ws.Plan(ctx, vars, false); err == nil {
			err = ws.Apply(ctx, fresh.File, nil)
		}
	}
	if err != nil {
		return s.failOrRetry(ctx, j, r, err)
	}
	outs, err := ws.Outputs(ctx)
	if err != nil {
		return s.failOrRetry(ctx, j, r, err)
	}
	node, err := d.Node(outs)
	if err != nil {
		return s.fail(ctx, j, r, err)
	}
	it, found := providers.FindInstanceType(d, r.InstanceType)
	if !found || it.VCPU <= 0 || it.MemoryMB <= 0 || it.DiskGB <= 0 {
		// Never register a node of unknown size: zero capacity would make
		// placement refuse everything on it, silently.
		return s.fail(ctx, j, r, fmt.Errorf("the server was created but not registered as a node: instance type %q is not in this worker's %s catalog (or has no capacity there), so its capacity is unknown: destroy this request, or add the type to the catalog and plan again", r.InstanceType, r.Provider))
	}
	return s.finish(ctx, j, func(tx pgx.Tx) error {
		n, err := s.q.InsertNodeOnce(ctx, tx, store.InsertNodeOnceParams{
			OrganizationID: r.OrganizationID, ProvisionID: uuid.NullUUID{UUID: r.ID, Valid: true},
			Name: r.Name, Provider: r.Provider, Region: r.Region, InstanceType: r.InstanceType,
			Vcpu: int32(it.VCPU), MemoryMb: int32(it.MemoryMB), DiskGb: int32(it.DiskGB),
			Ipv4: node.IPv4, Ipv6: node.IPv6, ServerID: node.ServerID, Labels: r.Labels,
		})
		if err != nil {
			return fmt.Errorf("register node of %s: %w", r.ID, err)
		}
		return s.q.SetProvisionApplied(ctx, tx, store.SetProvisionAppliedParams{OrganizationID: r.OrganizationID, ID: r.ID, NodeID: uuid.NullUUID{UUID: n.ID, Valid: true}})
	})
}

// RunDestroy destroys the request's resources and removes its node.
func (s *Service) RunDestroy(ctx context.Context, j Job) error {
	r, d, ok, err := s.load(ctx, j, StatusDestroying)
	if !ok || err != nil {
		return err
	}
	logs := s.newLogWriter(ctx, r.ID, "destroy")
	defer logs.Close()
	ws, done, err := s.open(ctx, j, r, d, logs)
	if err != nil {
		return s.failOrRetry(ctx, j, r, err)
	}
	defer done()
	vars, err := s.variables(ctx, r, d)
	if err != nil {
		return s.failOrRetry(ctx, j, r, err)
	}
	if err := ws.Destroy(ctx, vars); err != nil {
		return s.failOrRetry(ctx, j, r, err)
	}
	err = s.finish(ctx, j, func(tx pgx.Tx) error {
		if err := s.q.DeleteNodeOfProvision(ctx, tx, store.DeleteNodeOfProvisionParams{OrganizationID: r.OrganizationID, ProvisionID: uuid.NullUUID{UUID: r.ID, Valid: true}}); err != nil {
			return fmt.Errorf("remove node of %s: %w", r.ID, err)
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

// failOrRetry: a cancelled context (worker shutting down, job timeout) is
// returned for River to retry; anything else is Terraform's verdict and
// ends the request failed.
func (s *Service) failOrRetry(ctx context.Context, j Job, r store.ProvisionRequest, err error) error {
	if errors.Is(context.Cause(ctx), river.ErrJobCancelledRemotely) {
		return s.cancelled(ctx, j, r)
	}
	if ctx.Err() != nil {
		return err
	}
	return s.fail(ctx, j, r, err)
}

// cancelled records a run interrupted by Cancel: a plan changes nothing
// (the request goes back to pending or planned); an apply or a destroy may
// have changed some resources (failed, saying so).
func (s *Service) cancelled(ctx context.Context, j Job, r store.ProvisionRequest) error {
	status, msg := statusBefore(r), "plan cancelled"
	switch r.Status {
	case StatusApplying:
		status, msg = StatusFailed, "apply cancelled: some resources may have been made: plan again to converge"
	case StatusDestroying:
		status, msg = StatusFailed, "destroy cancelled: some resources may remain: destroy again"
	}
	bg := context.WithoutCancel(ctx) // the run's own context is cancelled
	return s.finish(bg, j, func(tx pgx.Tx) error {
		return s.q.SetProvisionStatus(bg, tx, store.SetProvisionStatusParams{OrganizationID: r.OrganizationID, ID: r.ID, Status: status, Error: msg})
	})
}

// logWriter appends Terraform's output to provision_logs line by line, so
// followers see it while the run goes on.
type logWriter struct {
	ctx       context.Context
	s         *Service
	id        uuid.UUID
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

func (s *Service) newLogWriter(ctx context.Context, id uuid.UUID, operation string) *logWriter {
	w := &logWriter{ctx: context.WithoutCancel(ctx), s: s, id: id, operation: operation}
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
	if err := w.s.q.AppendProvisionLog(w.ctx, w.s.st.Pool, store.AppendProvisionLogParams{ProvisionID: w.id, Operation: w.operation, Chunk: chunk}); err != nil {
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
