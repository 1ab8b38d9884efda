package provision

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/shardform/shardform/domain"
	"github.com/shardform/shardform/store"
	"github.com/shardform/shardform/terraform"
)

// renderPoll is how often PlanJSON looks whether a worker has rendered the plan.
const renderPoll = 50 * time.Millisecond

// ErrRendering: the plan is being rendered; ask again in a moment.
var ErrRendering = errors.New("the plan is being rendered: ask again in a moment")

// PlanJSON returns a plan run's JSON plan (terraform show -json, sensitive
// values masked), rendered by a worker (a Terraform process that is not on
// the hot path of plan and apply) as the plan succeeded, or, when it is
// not rendered yet (plans rendered on demand, or a busy queue), queued for
// rendering now; it waits up to wait for the render, and returns
// ErrRendering when the wait ends first.
func (s *Service) PlanJSON(ctx context.Context, p *domain.Principal, id uuid.UUID, wait time.Duration) (json.RawMessage, error) {
	run, err := s.q.GetRun(ctx, s.st.Pool, store.GetRunParams{OrganizationID: p.OrgID, ID: id})
	if err := s.planReadable(p, run, err); err != nil {
		return nil, err
	}
	if len(run.PlanJson) > 0 {
		return run.PlanJson, nil
	}
	if len(run.PlanFile) == 0 {
		return nil, domain.Conflict("run %s has no saved plan to render: it was dropped (applied, superseded by a newer plan, or older than %d days) before it was rendered", id, PlanFileDays)
	}
	if s.queue == nil {
		return nil, fmt.Errorf("run %s: no job queue configured", id)
	}
	err = s.st.InTx(ctx, func(tx pgx.Tx) error {
		_, err := s.queue.InsertTx(ctx, tx, RenderPlanArgs{OrganizationID: p.OrgID, RunID: id}, nil)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("render plan of run %s: %w", id, err)
	}
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	tick := time.NewTicker(renderPoll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-deadline.C:
			return nil, ErrRendering
		case <-tick.C:
		}
		run, err := s.q.GetRun(ctx, s.st.Pool, store.GetRunParams{OrganizationID: p.OrgID, ID: id})
		if err != nil {
			return nil, fmt.Errorf("render plan of run %s: %w", id, err)
		}
		if len(run.PlanJson) > 0 {
			return run.PlanJson, nil
		}
		if len(run.PlanFile) == 0 {
			return nil, domain.Conflict("the plan of run %s could not be rendered: see the worker's log", id)
		}
	}
}

// queueRenderTx queues the render of a plan run that has just succeeded,
// in the transaction that records it (unless plans are rendered on
// demand): a third Terraform process (show -json) per plan, off the hot
// path: the request is planned before it runs, its job's priority
// (PriorityBackground) is below every plan and apply, and an apply never
// waits for it.
func (s *Service) queueRenderTx(ctx context.Context, tx pgx.Tx, orgID, runID uuid.UUID) error {
	if s.renderOnDemand {
		return nil
	}
	if s.queue == nil {
		return fmt.Errorf("render plan of run %s: no job queue configured", runID)
	}
	if _, err := s.queue.InsertTx(ctx, tx, RenderPlanArgs{OrganizationID: orgID, RunID: runID}, nil); err != nil {
		return fmt.Errorf("render plan of run %s: %w", runID, err)
	}
	return nil
}

// planReadable checks that run (as read, with err) is a plan run of the
// caller's organization whose plan exists.
func (s *Service) planReadable(p *domain.Principal, run store.ProvisionRun, err error) error {
	if nerr := need(p, domain.PermProvisionRead); nerr != nil {
		return nerr
	}
	if store.IsNoRows(err) {
		return domain.NotFound("run")
	}
	if err != nil {
		return fmt.Errorf("run %s: %w", run.ID, err)
	}
	if run.Kind != RunPlan {
		return domain.Conflict("run %s is a %s run: only plan runs have a plan (see its changes and drift)", run.ID, run.Kind)
	}
	if run.Status != RunSucceeded {
		return domain.Conflict("run %s is %s: only a succeeded plan run has a plan", run.ID, run.Status)
	}
	return nil
}

// PlanFileDays is how long a plan run keeps its saved plan when nothing
// (an apply, a newer plan, its render) dropped it before: the cleanup job
// drops it then.
const PlanFileDays = 7

// RenderPlan is the provision_render_plan job: `terraform show -json` of a
// plan run's saved plan in the request's workspace (its provider set's
// shared init supplies the schemas; the state is not read), masked, stored
// on the run with the masked before and after of each change; the saved
// plan is then dropped from the run.
func (s *Service) RenderPlan(ctx context.Context, args RenderPlanArgs) error {
	run, err := s.q.GetRun(ctx, s.st.Pool, store.GetRunParams{OrganizationID: args.OrganizationID, ID: args.RunID})
	if store.IsNoRows(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("render plan of run %s: %w", args.RunID, err)
	}
	if len(run.PlanJson) > 0 || len(run.PlanFile) == 0 {
		return nil // rendered already, or nothing to render
	}
	if s.noTerraform != nil {
		return s.noTerraform
	}
	r, err := s.q.GetProvisionRequest(ctx, s.st.Pool, store.GetProvisionRequestParams{OrganizationID: args.OrganizationID, ID: run.ProvisionID})
	if err != nil {
		return fmt.Errorf("render plan of run %s: %w", run.ID, err)
	}
	d, ok := s.drivers.Get(r.Provider)
	if !ok {
		return fmt.Errorf("render plan of run %s: provider %q is not configured on this worker", run.ID, r.Provider)
	}
	plan, err := s.sealer.Open(run.PlanFile, planContext(r.ID))
	if err != nil {
		return fmt.Errorf("render plan of run %s: saved plan unreadable: %w", run.ID, err)
	}
	cfg, err := s.render(ctx, r, d)
	if err != nil {
		return fmt.Errorf("render plan of run %s: %w", run.ID, err)
	}
	var out bytes.Buffer // show's own messages (stderr): for the error only
	ws, err := s.runner.Open(ctx, r.ID.String(), cfg, &out, nil)
	if err != nil {
		return fmt.Errorf("render plan of run %s: %w", run.ID, err)
	}
	rendered, err := ws.ShowPlan(ctx, plan)
	if err != nil {
		return fmt.Errorf("render plan of run %s: %w", run.ID, err)
	}
	changes, err := mergeRendered(run.Changes, rendered)
	if err != nil {
		s.log.WarnContext(ctx, "run's stored changes unreadable: replaced by the rendered plan's", slog.String("run_id", run.ID.String()), slog.Any("error", err))
	}
	return s.q.SetRunPlanJSON(context.WithoutCancel(ctx), s.st.Pool, store.SetRunPlanJSONParams{
		OrganizationID: args.OrganizationID, ID: run.ID, PlanJson: rendered.JSON, Changes: changes,
	})
}

// mergeRendered is the run's change summary with every resource change of
// the rendered plan (no-op and read ones too), with masked values.
func mergeRendered(stored []byte, rendered terraform.RenderedPlan) ([]byte, error) {
	var sum terraform.PlanSummary
	var err error
	if len(stored) > 0 {
		err = json.Unmarshal(stored, &sum)
	}
	sum.Resources = rendered.Changes
	b, merr := json.Marshal(sum)
	if merr != nil {
		return nil, merr
	}
	return b, err
}

// SweepDrift is the periodic drift check: a refresh run for every applied
// request without a run in progress (up to 1,000 per sweep, the longest
// unchecked first). It returns how many it queued.
func (s *Service) SweepDrift(ctx context.Context) (int, error) {
	rows, err := s.q.ApplicableRequestsForDrift(ctx, s.st.Pool, 1000)
	if err != nil {
		return 0, fmt.Errorf("drift sweep: %w", err)
	}
	n := 0
	for _, row := range rows {
		err := s.st.InTx(ctx, func(tx pgx.Tx) error {
			r, err := s.q.GetProvisionRequestForUpdate(ctx, tx, store.GetProvisionRequestForUpdateParams{OrganizationID: row.OrganizationID, ID: row.ID})
			if err != nil || r.Status != StatusApplied {
				return err
			}
			// Below users' runs: a sweep of many requests never holds
			// their plans and applies up.
			opts := RefreshArgs{}.InsertOpts()
			opts.Priority = PriorityBackground
			_, err = s.newRunWithOptsTx(ctx, tx, nil, r, RunRefresh, &opts)
			return err
		})
		var pe *domain.PublicError
		switch {
		case err == nil:
			n++
		case errors.As(err, &pe):
			// A run started meanwhile: the next sweep checks it.
		default:
			return n, fmt.Errorf("drift sweep: %w", err)
		}
	}
	return n, nil
}
