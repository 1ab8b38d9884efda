package provision

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/shardform/shardform/domain"
	"github.com/shardform/shardform/store"
	"github.com/shardform/shardform/terraform"
)

// Run kinds and statuses.
const (
	RunPlan    = "plan"
	RunApply   = "apply"
	RunDestroy = "destroy"
	RunRefresh = "refresh"

	RunQueued    = "queued"
	RunRunning   = "running"
	RunSucceeded = "succeeded"
	RunFailed    = "failed"
	RunCancelled = "cancelled"
)

// Run is one plan, apply, destroy or refresh of a request, as the API shows it.
type Run struct {
	ID               uuid.UUID              `json:"id"`
	ProvisionID      uuid.UUID              `json:"provision_id"`
	Kind             string                 `json:"kind"`
	Status           string                 `json:"status"`
	QueuedAt         time.Time              `json:"queued_at"`
	StartedAt        *time.Time             `json:"started_at"`
	FinishedAt       *time.Time             `json:"finished_at"`
	Worker           string                 `json:"worker"`
	TerraformVersion string                 `json:"terraform_version"`
	ExitCode         *int                   `json:"exit_code"`
	Error            string                 `json:"error"`
	Attempt          int                    `json:"attempt"`
	Changes          *terraform.PlanSummary `json:"changes"`
	// PlanRendered: the plan has been rendered for review (GET
	// /v1/runs/{id}/plan), and the changes list every resource change
	// (no-op ones too) with its masked before and after values.
	PlanRendered bool `json:"plan_rendered"`
	// Drifted is a refresh run's verdict; Drift what drifted.
	Drifted *bool            `json:"drifted"`
	Drift   *[]DriftedChange `json:"drift"` // null but for refresh runs

	// Cancel is "cancel" or "force" once a cancel was asked of the run.
	Cancel string `json:"cancel_requested,omitempty"`
}

// DriftedChange is a resource changed outside Terraform: the attributes
// whose values differ from the state, and its masked values.
type DriftedChange struct {
	Address    string          `json:"address"`
	Type       string          `json:"type,omitempty"`
	Action     string          `json:"action"`
	Attributes []string        `json:"attributes"`
	Before     json.RawMessage `json:"before,omitempty"`
	After      json.RawMessage `json:"after,omitempty"`
}

// runView is a stored run as the API shows it. Stored JSON that does not
// decode is left out and logged.
func (s *Service) runView(ctx context.Context, r store.ProvisionRun) Run {
	return s.runViewOf(ctx, r, len(r.PlanJson) > 0)
}

// listedRunView is runView for a run read without its saved and rendered
// plans (GetRunView, ListRuns, LatestRunsOf): rendered says whether it was.
func (s *Service) listedRunView(ctx context.Context, r store.ListRunsRow) Run {
	return s.runViewOf(ctx, store.ProvisionRun{
		ID: r.ID, OrganizationID: r.OrganizationID, ProvisionID: r.ProvisionID, Kind: r.Kind, Status: r.Status,
		CreatedBy: r.CreatedBy, JobID: r.JobID, Attempt: r.Attempt, QueuedAt: r.QueuedAt, StartedAt: r.StartedAt,
		FinishedAt: r.FinishedAt, Worker: r.Worker, TerraformVersion: r.TerraformVersion, ExitCode: r.ExitCode,
		Error: r.Error, Changes: r.Changes, Drifted: r.Drifted, Drift: r.Drift, CancelRequested: r.CancelRequested,
		AutoApply: r.AutoApply,
	}, r.PlanRendered)
}

func (s *Service) runViewOf(ctx context.Context, r store.ProvisionRun, rendered bool) Run {
	out := Run{ID: r.ID, ProvisionID: r.ProvisionID, Kind: r.Kind, Status: r.Status, QueuedAt: r.QueuedAt,
		StartedAt: r.StartedAt, FinishedAt: r.FinishedAt, Worker: r.Worker, TerraformVersion: r.TerraformVersion,
		Error: r.Error, Attempt: int(r.Attempt), PlanRendered: rendered, Cancel: r.CancelRequested}
	if r.ExitCode.Valid {
		c := int(r.ExitCode.Int32)
		out.ExitCode = &c
	}
	if len(r.Changes) > 0 {
		var sum terraform.PlanSummary
		if err := json.Unmarshal(r.Changes, &sum); err != nil {
			s.log.ErrorContext(ctx, "run has unreadable changes: shown without them", slog.String("run_id", r.ID.String()), slog.Any("error", err))
		} else {
			out.Changes = &sum
		}
	}
	if r.Drifted.Valid {
		d := r.Drifted.Bool
		out.Drifted = &d
		drift := []DriftedChange{}
		if len(r.Drift) > 0 {
			if err := json.Unmarshal(r.Drift, &drift); err != nil || drift == nil {
				drift = []DriftedChange{}
				s.log.ErrorContext(ctx, "run has an unreadable drift report: shown without it", slog.String("run_id", r.ID.String()), slog.Any("error", err))
			}
		}
		out.Drift = &drift
	}
	return out
}

// Finished reports whether a run status is final.
func Finished(status string) bool {
	return status == RunSucceeded || status == RunFailed || status == RunCancelled
}

// ListRuns lists a request's runs, newest first (kind: one kind, or all).
func (s *Service) ListRuns(ctx context.Context, p *domain.Principal, provisionID uuid.UUID, kind string, page domain.Page) ([]Run, int64, error) {
	if _, err := s.Get(ctx, p, provisionID); err != nil {
		return nil, 0, err
	}
	switch kind {
	case "", RunPlan, RunApply, RunDestroy, RunRefresh:
	default:
		return nil, 0, domain.Invalid("kind", "must be one of plan, apply, destroy, refresh")
	}
	total, err := s.q.CountRuns(ctx, s.st.Pool, store.CountRunsParams{OrganizationID: p.OrgID, ProvisionID: provisionID, Kind: optional(kind)})
	if err != nil {
		return nil, 0, fmt.Errorf("count runs of %s: %w", provisionID, err)
	}
	rows, err := s.q.ListRuns(ctx, s.st.Pool, store.ListRunsParams{OrganizationID: p.OrgID, ProvisionID: provisionID, Kind: optional(kind), Lim: page.Limit, Off: page.Offset()})
	if err != nil {
		return nil, 0, fmt.Errorf("list runs of %s: %w", provisionID, err)
	}
	out := make([]Run, len(rows))
	for i, r := range rows {
		out[i] = s.listedRunView(ctx, r)
	}
	return out, total, nil
}

// GetRun returns one run of the caller's organization.
func (s *Service) GetRun(ctx context.Context, p *domain.Principal, id uuid.UUID) (Run, error) {
	if err := need(p, domain.PermProvisionRead); err != nil {
		return Run{}, err
	}
	r, err := s.q.GetRunView(ctx, s.st.Pool, store.GetRunViewParams{OrganizationID: p.OrgID, ID: id})
	if store.IsNoRows(err) {
		return Run{}, domain.NotFound("run")
	}
	if err != nil {
		return Run{}, fmt.Errorf("get run %s: %w", id, err)
	}
	return s.listedRunView(ctx, store.ListRunsRow(r)), nil
}

// RunLogs returns a run's output after log id afterID (at most
// LogsPageSize chunks) and whether the run is still queued or running.
func (s *Service) RunLogs(ctx context.Context, p *domain.Principal, id uuid.UUID, afterID int64) ([]LogLine, bool, error) {
	run, err := s.GetRun(ctx, p, id)
	if err != nil {
		return nil, false, err
	}
	rows, err := s.q.ListRunLogs(ctx, s.st.Pool, store.ListRunLogsParams{OrganizationID: p.OrgID, RunID: uuid.NullUUID{UUID: id, Valid: true}, AfterID: afterID})
	if err != nil {
		return nil, false, fmt.Errorf("logs of run %s: %w", id, err)
	}
	out := make([]LogLine, len(rows))
	for i, l := range rows {
		out[i] = LogLine{ID: l.ID, Operation: l.Operation, Text: l.Chunk, CreatedAt: l.CreatedAt}
	}
	return out, !Finished(run.Status), nil
}

// FollowRun is FollowLogs for a run: wake receives a value whenever the
// run's output grows or its status changes.
func (s *Service) FollowRun(ctx context.Context, p *domain.Principal, id uuid.UUID) (wake <-chan struct{}, stop func(), err error) {
	run, err := s.GetRun(ctx, p, id)
	if err != nil {
		return nil, nil, err
	}
	return s.FollowLogs(ctx, p, run.ProvisionID)
}

// newRunTx records a queued run of the request (locked by the caller) and
// inserts its job, in the caller's transaction. A request has at most one
// run queued or running: a second is a conflict naming the first.
func (s *Service) newRunTx(ctx context.Context, tx pgx.Tx, p *domain.Principal, r store.ProvisionRequest, kind string) (store.ProvisionRun, error) {
	return s.newRunWithOptsTx(ctx, tx, p, r, kind, nil)
}

// newRunWithOptsTx is newRunTx with the job's insert options (nil: the
// job kind's own).
func (s *Service) newRunWithOptsTx(ctx context.Context, tx pgx.Tx, p *domain.Principal, r store.ProvisionRequest, kind string, opts *river.InsertOpts) (store.ProvisionRun, error) {
	if active, err := s.q.ActiveRunOf(ctx, tx, store.ActiveRunOfParams{OrganizationID: r.OrganizationID, ProvisionID: r.ID}); err == nil {
		return store.ProvisionRun{}, domain.Conflict("run %s (%s) of this request is still %s: wait for it or cancel it", active.ID, active.Kind, active.Status)
	} else if !store.IsNoRows(err) {
		return store.ProvisionRun{}, fmt.Errorf("provision %s: %w", r.ID, err)
	}
	if err := s.noPowerAction(ctx, tx, r); err != nil {
		return store.ProvisionRun{}, err
	}
	var by uuid.NullUUID
	if p != nil && p.UserID != uuid.Nil {
		by = uuid.NullUUID{UUID: p.UserID, Valid: true}
	}
	run, err := s.q.InsertRun(ctx, tx, store.InsertRunParams{OrganizationID: r.OrganizationID, ProvisionID: r.ID, Kind: kind, CreatedBy: by})
	if store.IsUniqueViolation(err) {
		return store.ProvisionRun{}, domain.Conflict("another run of this request was queued just now: wait for it or cancel it")
	}
	if err != nil {
		return store.ProvisionRun{}, fmt.Errorf("provision %s: new %s run: %w", r.ID, kind, err)
	}
	args := RunArgs{OrganizationID: r.OrganizationID, ProvisionID: r.ID, RunID: run.ID}
	res, err := s.queue.InsertTx(ctx, tx, runJobArgs(kind, args), opts)
	if err != nil {
		return store.ProvisionRun{}, fmt.Errorf("provision %s: enqueue %s: %w", r.ID, kind, err)
	}
	if res.UniqueSkippedAsDuplicate {
		return store.ProvisionRun{}, domain.Conflict("a %s job for this request is still finishing: try again in a moment", kind)
	}
	if err := s.q.SetRunJob(ctx, tx, store.SetRunJobParams{OrganizationID: r.OrganizationID, ID: run.ID, JobID: res.Job.ID}); err != nil {
		return store.ProvisionRun{}, fmt.Errorf("provision %s: %w", r.ID, err)
	}
	run.JobID.Int64, run.JobID.Valid = res.Job.ID, true
	return run, nil
}

// cancelRunTx cancels run (of request r; both locked by the caller, the
// request first). A queued run is cancelled at once and the request goes
// back to where it was; a running one is interrupted (force: killed at
// once) and its worker records the outcome.
func (s *Service) cancelRunTx(ctx context.Context, tx pgx.Tx, r *store.ProvisionRequest, run store.ProvisionRun, force bool) (store.ProvisionRun, error) {
	if Finished(run.Status) {
		return run, domain.Conflict("run %s has already %s: nothing to cancel", run.ID, finishedWord(run.Status))
	}
	mode := "cancel"
	if force {
		mode = "force"
	}
	run, err := s.q.RequestRunCancel(ctx, tx, store.RequestRunCancelParams{OrganizationID: r.OrganizationID, ID: run.ID, CancelRequested: mode})
	if err != nil {
		return run, fmt.Errorf("cancel run %s: %w", run.ID, err)
	}
	if !run.JobID.Valid {
		return run, fmt.Errorf("cancel run %s: the run has no job", run.ID)
	}
	job, err := s.queue.JobCancelTx(ctx, tx, run.JobID.Int64)
	if err != nil && !store.IsNoRows(err) {
		return run, fmt.Errorf("cancel run %s: cancel job %d: %w", run.ID, run.JobID.Int64, err)
	}
	if job != nil && job.State == rivertype.JobStateRunning {
		return run, nil // its worker is told, and records the outcome
	}
	// The job is not running (it never started, is waiting for a retry, or
	// is gone): nobody else will record the run's end.
	to, msg := statusBefore(*r), "cancelled before it ran"
	if run.Attempt > 0 {
		to, msg = cancelledStatus(*r)
	}
	run, err = s.q.EndRunNow(ctx, tx, store.EndRunNowParams{OrganizationID: r.OrganizationID, ID: run.ID, Status: RunCancelled, Error: msg})
	if err != nil {
		return run, fmt.Errorf("cancel run %s: %w", run.ID, err)
	}
	if Running(r.Status) && r.Status == runningStatusOf(run.Kind) {
		if err := s.q.SetProvisionStatus(ctx, tx, store.SetProvisionStatusParams{OrganizationID: r.OrganizationID, ID: r.ID, Status: to, Error: msg}); err != nil {
			return run, fmt.Errorf("provision %s: %w", r.ID, err)
		}
		r.Status, r.Error = to, msg
	}
	return run, nil
}

// runJobArgs is the job of a run of kind.
func runJobArgs(kind string, a RunArgs) river.JobArgs {
	switch kind {
	case RunApply:
		return ApplyArgs(a)
	case RunDestroy:
		return DestroyArgs(a)
	case RunRefresh:
		return RefreshArgs(a)
	}
	return PlanArgs(a)
}

func finishedWord(status string) string {
	if status == RunSucceeded {
		return "succeeded"
	}
	return status
}

// runningStatusOf is the request status while a run of kind runs ("" for
// a refresh, which leaves the request applied).
func runningStatusOf(kind string) string {
	switch kind {
	case RunPlan:
		return StatusPlanning
	case RunApply:
		return StatusApplying
	case RunDestroy:
		return StatusDestroying
	}
	return ""
}

// CancelRun cancels a run (POST /v1/runs/{id}/cancel).
func (s *Service) CancelRun(ctx context.Context, p *domain.Principal, id uuid.UUID, force bool) (Run, error) {
	if err := need(p, domain.PermProvisionWrite); err != nil {
		return Run{}, err
	}
	if s.queue == nil {
		return Run{}, fmt.Errorf("run %s: no job queue configured", id)
	}
	var out Run
	err := s.st.InTx(ctx, func(tx pgx.Tx) error {
		run, err := s.q.GetRun(ctx, tx, store.GetRunParams{OrganizationID: p.OrgID, ID: id})
		if store.IsNoRows(err) {
			return domain.NotFound("run")
		}
		if err != nil {
			return fmt.Errorf("run %s: %w", id, err)
		}
		r, err := s.q.GetProvisionRequestForUpdate(ctx, tx, store.GetProvisionRequestForUpdateParams{OrganizationID: p.OrgID, ID: run.ProvisionID})
		if err != nil {
			return fmt.Errorf("run %s: %w", id, err)
		}
		if run, err = s.q.GetRunForUpdate(ctx, tx, store.GetRunForUpdateParams{OrganizationID: p.OrgID, ID: id}); err != nil {
			return fmt.Errorf("run %s: %w", id, err)
		}
		run, err = s.cancelRunTx(ctx, tx, &r, run, force)
		if err != nil {
			return err
		}
		out = s.runView(ctx, run)
		return nil
	})
	return out, err
}

// cancelledStatus is where a request goes when its started run is
// cancelled: a plan or refresh changed nothing; an apply or a destroy may
// have changed some resources (failed, saying so).
func cancelledStatus(r store.ProvisionRequest) (string, string) {
	switch r.Status {
	case StatusApplying:
		return StatusFailed, "apply cancelled: some resources may have been made: plan again to converge"
	case StatusDestroying:
		return StatusFailed, "destroy cancelled: some resources may remain: destroy again"
	case StatusApplied:
		return StatusApplied, "refresh cancelled"
	}
	return statusBefore(r), "plan cancelled"
}
