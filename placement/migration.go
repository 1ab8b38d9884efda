package placement

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/shardform/shardform/domain"
	"github.com/shardform/shardform/planner"
	"github.com/shardform/shardform/store"
)

// Migration kinds and statuses.
const (
	KindDrainMigration   = "drain"
	KindMigrateMigration = "migrate"

	MigrationQueued    = "queued"
	MigrationRunning   = "running"
	MigrationSucceeded = "succeeded" // every instance moved (or was gone)
	MigrationPartial   = "partial"   // ended with instances that fit nowhere (moves failed)
	MigrationFailed    = "failed"
	MigrationCancelled = "cancelled"
	MigrationPlanned   = "planned" // a dry run's plan

	MovePending   = "pending"
	MoveMoved     = "moved"
	MoveFailed    = "failed"    // it stayed: no node could take it (reason)
	MoveSkipped   = "skipped"   // deleted, or moved by someone else, meanwhile
	MoveCancelled = "cancelled" // left by a cancel or an error
	MovePlanned   = "planned"   // in a dry run's plan
)

// maxTargetAttempts bounds how often one move picks another target after
// the chosen one refused it under its lock (filled by a concurrent
// placement, cordoned, deleted).
const maxTargetAttempts = 10

// DrainRequest is the optional body of POST /v1/nodes/{id}/drain.
type DrainRequest struct {
	// Strategy ranks the target nodes as suggest-fit does: binpack
	// (default: fill the busiest nodes) or spread.
	Strategy string `json:"strategy"`
	// DryRun answers the plan of moves; nothing is cordoned or moved.
	DryRun bool `json:"dry_run"`
}

// MigrateRequest is the body of POST /v1/nodes/{id}/migrate.
type MigrateRequest struct {
	TargetNodeID string `json:"target_node_id"`
}

// MigrationFilter narrows GET /v1/migrations.
type MigrationFilter struct {
	NodeID uuid.NullUUID // the drained or migrated node, or a migration's target
	Status string
	Kind   string
}

// Migration is a drain or a migration of a node's instances: its record
// (GET /v1/migrations/{id}) or, for a dry run, its plan.
type Migration struct {
	ID     uuid.UUID `json:"id,omitzero"` // absent in a dry run's plan
	Kind   string    `json:"kind"`        // drain or migrate
	DryRun bool      `json:"dry_run"`
	// Status: queued, running, succeeded, partial (some instances fit
	// nowhere and stayed), failed, cancelled; planned for a dry run.
	Status         string     `json:"status"`
	NodeID         uuid.UUID  `json:"node_id"`
	NodeName       string     `json:"node_name"`
	TargetNodeID   *uuid.UUID `json:"target_node_id"` // migrate only
	TargetNodeName string     `json:"target_node_name"`
	Strategy       string     `json:"strategy"` // drain only
	// CancelRequested: the drain stops before its next move.
	CancelRequested bool   `json:"cancel_requested"`
	Error           string `json:"error"`
	MovesTotal      int    `json:"moves_total"`
	MovesDone       int    `json:"moves_done"`
	MovesLeft       int    `json:"moves_left"`   // not tried yet (planned, in a dry run)
	MovesFailed     int    `json:"moves_failed"` // fit nowhere: they stayed
	MovesSkipped    int    `json:"moves_skipped"`
	MovesCancelled  int    `json:"moves_cancelled"`
	// Moves lists every move in the order they are made (largest instance
	// first); Failures repeats the failed ones. Lists leave both out.
	Moves      []Move     `json:"moves,omitzero"`
	Failures   []Move     `json:"failures,omitzero"`
	CreatedAt  time.Time  `json:"created_at,omitzero"`
	StartedAt  *time.Time `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at"`
}

// Move is one instance of a migration.
type Move struct {
	InstanceID   uuid.UUID         `json:"instance_id"`
	InstanceName string            `json:"instance_name"`
	Reservation  planner.Resources `json:"reservation"`
	// Status: pending, moved, failed, skipped, cancelled; planned or
	// failed in a dry run.
	Status     string     `json:"status"`
	ToNodeID   *uuid.UUID `json:"to_node_id"`
	ToNodeName string     `json:"to_node_name"`
	Reason     string     `json:"reason"`
	FinishedAt *time.Time `json:"finished_at"`
}

func checkStrategy(s string) (planner.Strategy, error) {
	switch planner.Strategy(s) {
	case "":
		return planner.StrategyBinpack, nil
	case planner.StrategyBinpack, planner.StrategySpread:
		return planner.Strategy(s), nil
	}
	return "", domain.Invalid("strategy", "must be binpack or spread")
}

// Drain empties a node of the caller's organization: it cordons the node
// and moves every instance on it to other nodes of the same provider and
// region, each to the best node by suggest-fit's scoring, under the move
// endpoint's lock and fit check. The moves run in a node_drain job; the
// answer is the queued migration record (succeeded at once for an empty
// node). With DryRun the answer is the plan, and nothing changes.
func (s *Service) Drain(ctx context.Context, p *domain.Principal, id uuid.UUID, r DrainRequest) (Migration, error) {
	if err := need(p, domain.PermNodesWrite); err != nil {
		return Migration{}, err
	}
	strategy, err := checkStrategy(r.Strategy)
	if err != nil {
		return Migration{}, err
	}
	if r.DryRun {
		return s.planDrain(ctx, p.OrgID, id, strategy)
	}
	if s.queue == nil {
		return Migration{}, fmt.Errorf("drain node %s: no job queue configured", id)
	}
	var out Migration
	err = s.st.InTx(ctx, func(tx pgx.Tx) error {
		n, err := s.lockNode(ctx, tx, p.OrgID, id)
		if err != nil {
			return err
		}
		if err := s.notBusy(ctx, tx, p.OrgID, n); err != nil {
			return err
		}
		if err := s.q.CordonNode(ctx, tx, store.CordonNodeParams{OrganizationID: p.OrgID, ID: id}); err != nil {
			return fmt.Errorf("cordon: %w", err)
		}
		insts, err := s.q.ListNodeInstancesForMove(ctx, tx, store.ListNodeInstancesForMoveParams{OrganizationID: p.OrgID, NodeID: id})
		if err != nil {
			return fmt.Errorf("list instances: %w", err)
		}
		mid := uuid.New()
		params := store.InsertMigrationParams{
			ID: mid, OrganizationID: p.OrgID, Kind: KindDrainMigration, NodeID: id, NodeName: n.Name,
			Strategy: string(strategy), Status: MigrationQueued, CreatedBy: createdBy(p),
		}
		if len(insts) == 0 {
			now := s.now()
			params.Status, params.StartedAt, params.FinishedAt = MigrationSucceeded, &now, &now
		} else {
			res, err := s.queue.InsertTx(ctx, tx, DrainArgs{OrganizationID: p.OrgID, MigrationID: mid}, nil)
			if err != nil {
				return fmt.Errorf("queue: %w", err)
			}
			params.JobID = pgtype.Int8{Int64: res.Job.ID, Valid: true}
		}
		row, err := s.q.InsertMigration(ctx, tx, params)
		if err != nil {
			return fmt.Errorf("insert migration: %w", err)
		}
		if err := s.insertMoves(ctx, tx, mid, insts, MovePending, nil, ""); err != nil {
			return err
		}
		out, err = s.getMigration(ctx, tx, p.OrgID, row.ID)
		return err
	})
	if err != nil {
		return Migration{}, fmt.Errorf("drain node %s: %w", id, err)
	}
	return out, nil
}

// planDrain is a dry run: the moves a drain would make now, computed as the
// job makes them but without locks, on the nodes as they are.
func (s *Service) planDrain(ctx context.Context, org, id uuid.UUID, strategy planner.Strategy) (Migration, error) {
	node, err := s.q.GetNode(ctx, s.st.Pool, store.GetNodeParams{OrganizationID: org, ID: id})
	if store.IsNoRows(err) {
		return Migration{}, domain.NotFound("node")
	}
	if err != nil {
		return Migration{}, fmt.Errorf("plan drain of node %s: %w", id, err)
	}
	insts, err := s.q.ListNodeInstancesForMove(ctx, s.st.Pool, store.ListNodeInstancesForMoveParams{OrganizationID: org, NodeID: id})
	if err != nil {
		return Migration{}, fmt.Errorf("plan drain of node %s: list instances: %w", id, err)
	}
	t, err := s.readTargets(ctx, s.st.Pool, org, node)
	if err != nil {
		return Migration{}, fmt.Errorf("plan drain of node %s: %w", id, err)
	}
	out := Migration{Kind: KindDrainMigration, DryRun: true, Status: MigrationPlanned, NodeID: id, NodeName: node.Name,
		Strategy: string(strategy), Moves: make([]Move, 0, len(insts)), Failures: []Move{}}
	for _, in := range insts {
		res := reservation(in.CpuMillis, in.MemoryMb, in.DiskGb)
		mv := Move{InstanceID: in.ID, InstanceName: in.Name, Reservation: res, Status: MovePlanned}
		if i, reason := t.choose(res, strategy); i < 0 {
			mv.Status, mv.Reason = MoveFailed, reason
			out.Failures = append(out.Failures, mv)
		} else {
			t.place(i, res)
			to := t.ids[i]
			mv.ToNodeID, mv.ToNodeName = &to, t.nodes[i].Name
		}
		out.Moves = append(out.Moves, mv)
	}
	countMoves(&out)
	return out, nil
}

// Migrate moves every instance of a node to one other node of the
// organization, all or nothing: in one transaction, under the locks of
// both nodes, the target must be ready and hold all of them together, else
// nothing moves and the 409 names what does not fit. The node is cordoned,
// as by a drain. The answer is the migration record, succeeded.
func (s *Service) Migrate(ctx context.Context, p *domain.Principal, id uuid.UUID, r MigrateRequest) (Migration, error) {
	if err := need(p, domain.PermNodesWrite); err != nil {
		return Migration{}, err
	}
	if r.TargetNodeID == "" {
		return Migration{}, domain.Invalid("target_node_id", "is required")
	}
	to, err := domain.ParseID("target_node_id", r.TargetNodeID)
	if err != nil {
		return Migration{}, domain.Invalid("target_node_id", "must be a node id (a canonical lowercase UUID)")
	}
	if to == id {
		return Migration{}, domain.Invalid("target_node_id", "must be another node than the one migrated")
	}
	var out Migration
	err = s.st.InTx(ctx, func(tx pgx.Tx) error {
		order := []uuid.UUID{id, to}
		if bytes.Compare(to[:], id[:]) < 0 { // the order every placement locks nodes in
			order[0], order[1] = to, id
		}
		var src, dst store.LockPlacementNodeRow
		for _, nid := range order {
			n, err := s.lockNode(ctx, tx, p.OrgID, nid)
			if errors.Is(err, domain.ErrNotFound) && nid == to {
				return domain.NotFound("target node")
			}
			if err != nil {
				return err
			}
			if nid == id {
				src = n
			} else {
				dst = n
			}
		}
		if err := s.notBusy(ctx, tx, p.OrgID, src); err != nil {
			return err
		}
		if err := schedulable(dst); err != nil {
			return err
		}
		insts, err := s.q.ListNodeInstancesForMove(ctx, tx, store.ListNodeInstancesForMoveParams{OrganizationID: p.OrgID, NodeID: id})
		if err != nil {
			return fmt.Errorf("list instances: %w", err)
		}
		if err := s.holdsAll(dst, src, insts); err != nil {
			return err
		}
		if err := s.q.CordonNode(ctx, tx, store.CordonNodeParams{OrganizationID: p.OrgID, ID: id}); err != nil {
			return fmt.Errorf("cordon: %w", err)
		}
		if _, err := s.q.MoveAllInstances(ctx, tx, store.MoveAllInstancesParams{OrganizationID: p.OrgID, FromNodeID: id, ToNodeID: to}); err != nil {
			return fmt.Errorf("move instances: %w", err)
		}
		now := s.now()
		mid := uuid.New()
		if _, err := s.q.InsertMigration(ctx, tx, store.InsertMigrationParams{
			ID: mid, OrganizationID: p.OrgID, Kind: KindMigrateMigration, NodeID: id, NodeName: src.Name,
			TargetNodeID: uuid.NullUUID{UUID: to, Valid: true}, TargetNodeName: dst.Name,
			Status: MigrationSucceeded, CreatedBy: createdBy(p), StartedAt: &now, FinishedAt: &now,
		}); err != nil {
			return fmt.Errorf("insert migration: %w", err)
		}
		if err := s.insertMoves(ctx, tx, mid, insts, MoveMoved, &to, dst.Name); err != nil {
			return err
		}
		out, err = s.getMigration(ctx, tx, p.OrgID, mid)
		return err
	})
	if err != nil {
		return Migration{}, fmt.Errorf("migrate node %s to %s: %w", id, to, err)
	}
	return out, nil
}

// holdsAll refuses a migration whose instances do not all fit on the
// target together, naming each short resource and the instances left over
// when they are placed largest first.
func (s *Service) holdsAll(dst, src store.LockPlacementNodeRow, insts []store.ListNodeInstancesForMoveRow) error {
	free := s.capacity(dst).Free()
	var total planner.Resources
	for _, in := range insts {
		total = total.Add(reservation(in.CpuMillis, in.MemoryMb, in.DiskGb))
	}
	short := shortfall(free, total, "the instances need")
	if len(short) == 0 {
		return nil
	}
	left := free
	var over []string
	for _, in := range insts {
		res := reservation(in.CpuMillis, in.MemoryMb, in.DiskGb)
		if len(Shortfall(left, res)) == 0 {
			left = left.Sub(res)
		} else {
			over = append(over, in.Name)
		}
	}
	return domain.Conflict("node %s cannot hold the %d instances of node %s (a migration moves all or none): %s; these do not fit: %s",
		dst.Name, len(insts), src.Name, strings.Join(short, "; "), strings.Join(over, ", "))
}

// notBusy refuses a second drain or migration of a locked node while one is
// queued or running; one whose job ended without an outcome is ended
// first (failed), so it blocks the node no longer.
func (s *Service) notBusy(ctx context.Context, tx pgx.Tx, org uuid.UUID, n store.LockPlacementNodeRow) error {
	if err := s.endOrphans(ctx, tx, org, uuid.NullUUID{UUID: n.ID, Valid: true}, uuid.NullUUID{}); err != nil {
		return err
	}
	active, err := s.q.GetActiveMigrationOfNode(ctx, tx, store.GetActiveMigrationOfNodeParams{OrganizationID: org, NodeID: n.ID})
	if store.IsNoRows(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("active migration: %w", err)
	}
	return domain.Conflict("node %s is already being emptied by %s %s (%s): wait for it or POST /v1/migrations/%s/cancel",
		n.Name, active.Kind, active.ID, active.Status, active.ID)
}

func (s *Service) insertMoves(ctx context.Context, tx pgx.Tx, mid uuid.UUID, insts []store.ListNodeInstancesForMoveRow, status string, to *uuid.UUID, toName string) error {
	if len(insts) == 0 {
		return nil
	}
	p := store.InsertMigrationMovesParams{MigrationID: mid, Status: status, ToNodeName: toName}
	if to != nil {
		p.ToNodeID = uuid.NullUUID{UUID: *to, Valid: true}
	}
	for i, in := range insts {
		p.Positions = append(p.Positions, int32(i))
		p.InstanceIds = append(p.InstanceIds, in.ID)
		p.InstanceNames = append(p.InstanceNames, in.Name)
		p.CpuMillis = append(p.CpuMillis, in.CpuMillis)
		p.MemoryMb = append(p.MemoryMb, in.MemoryMb)
		p.DiskGb = append(p.DiskGb, in.DiskGb)
	}
	if err := s.q.InsertMigrationMoves(ctx, tx, p); err != nil {
		return fmt.Errorf("insert moves: %w", err)
	}
	return nil
}

// GetMigration returns one migration record of the caller's organization
// with its moves. A drain whose job ended without an outcome is ended
// (failed) first: the record says what happened.
func (s *Service) GetMigration(ctx context.Context, p *domain.Principal, id uuid.UUID) (Migration, error) {
	if err := need(p, domain.PermNodesRead); err != nil {
		return Migration{}, err
	}
	m, err := s.getMigration(ctx, s.st.Pool, p.OrgID, id)
	if err != nil || (m.Status != MigrationQueued && m.Status != MigrationRunning) {
		return m, err
	}
	if err := s.endOrphans(ctx, s.st.Pool, p.OrgID, uuid.NullUUID{}, uuid.NullUUID{UUID: id, Valid: true}); err != nil {
		return Migration{}, fmt.Errorf("get migration %s: %w", id, err)
	}
	return s.getMigration(ctx, s.st.Pool, p.OrgID, id)
}

func (s *Service) getMigration(ctx context.Context, db store.DBTX, org, id uuid.UUID) (Migration, error) {
	row, err := s.q.GetMigration(ctx, db, store.GetMigrationParams{OrganizationID: org, ID: id})
	if store.IsNoRows(err) {
		return Migration{}, domain.NotFound("migration")
	}
	if err != nil {
		return Migration{}, fmt.Errorf("get migration %s: %w", id, err)
	}
	moves, err := s.q.ListMigrationMoves(ctx, db, id)
	if err != nil {
		return Migration{}, fmt.Errorf("get migration %s: moves: %w", id, err)
	}
	out := migrationView(row)
	out.Moves, out.Failures = make([]Move, len(moves)), []Move{}
	for i, mv := range moves {
		out.Moves[i] = moveView(mv)
		if mv.Status == MoveFailed {
			out.Failures = append(out.Failures, out.Moves[i])
		}
	}
	countMoves(&out)
	return out, nil
}

// ListMigrations returns one page of the organization's migrations, newest
// first, with their counts of moves (not the moves).
func (s *Service) ListMigrations(ctx context.Context, p *domain.Principal, f MigrationFilter, page domain.Page) ([]Migration, int64, error) {
	if err := need(p, domain.PermNodesRead); err != nil {
		return nil, 0, err
	}
	if f.Status != "" && !slices.Contains([]string{MigrationQueued, MigrationRunning, MigrationSucceeded, MigrationPartial, MigrationFailed, MigrationCancelled}, f.Status) {
		return nil, 0, domain.Invalid("status", "must be queued, running, succeeded, partial, failed or cancelled")
	}
	if f.Kind != "" && f.Kind != KindDrainMigration && f.Kind != KindMigrateMigration {
		return nil, 0, domain.Invalid("kind", "must be drain or migrate")
	}
	status, kind := optional(f.Status), optional(f.Kind)
	rows, err := s.q.ListMigrations(ctx, s.st.Pool, store.ListMigrationsParams{
		OrganizationID: p.OrgID, NodeID: f.NodeID, Status: status, Kind: kind, Lim: page.Limit, Off: page.Offset(),
	})
	if err != nil {
		return nil, 0, fmt.Errorf("list migrations: %w", err)
	}
	total, err := s.q.CountMigrations(ctx, s.st.Pool, store.CountMigrationsParams{OrganizationID: p.OrgID, NodeID: f.NodeID, Status: status, Kind: kind})
	if err != nil {
		return nil, 0, fmt.Errorf("count migrations: %w", err)
	}
	out := make([]Migration, len(rows))
	ids := make([]uuid.UUID, len(rows))
	index := make(map[uuid.UUID]int, len(rows))
	for i, r := range rows {
		out[i], ids[i], index[r.ID] = migrationView(r), r.ID, i
	}
	if len(ids) > 0 {
		counts, err := s.q.CountMigrationMoves(ctx, s.st.Pool, ids)
		if err != nil {
			return nil, 0, fmt.Errorf("count moves: %w", err)
		}
		for _, c := range counts {
			addCount(&out[index[c.MigrationID]], c.Status, int(c.N))
		}
	}
	return out, total, nil
}

// CancelMigration cancels a queued migration at once, or asks a running
// drain to stop before its next move (the moves made stay made; the node
// stays cordoned); a running drain whose job ended without an outcome is
// cancelled at once. A migration that has ended is 409.
func (s *Service) CancelMigration(ctx context.Context, p *domain.Principal, id uuid.UUID) (Migration, error) {
	if err := need(p, domain.PermNodesWrite); err != nil {
		return Migration{}, err
	}
	var out Migration
	err := s.st.InTx(ctx, func(tx pgx.Tx) error {
		m, err := s.q.GetMigrationForUpdate(ctx, tx, store.GetMigrationForUpdateParams{OrganizationID: p.OrgID, ID: id})
		if store.IsNoRows(err) {
			return domain.NotFound("migration")
		}
		if err != nil {
			return fmt.Errorf("lock: %w", err)
		}
		switch m.Status {
		case MigrationQueued:
			// Its job finds it cancelled and does nothing.
			if err := s.q.FinishMigration(ctx, tx, store.FinishMigrationParams{OrganizationID: p.OrgID, ID: id,
				Status: MigrationCancelled, Reason: "cancelled before the drain started"}); err != nil {
				return fmt.Errorf("cancel: %w", err)
			}
		case MigrationRunning:
			if _, err := s.q.RequestMigrationCancel(ctx, tx, store.RequestMigrationCancelParams{OrganizationID: p.OrgID, ID: id}); err != nil {
				return fmt.Errorf("cancel: %w", err)
			}
			// No job will see the request if its job has ended.
			if err := s.endOrphans(ctx, tx, p.OrgID, uuid.NullUUID{}, uuid.NullUUID{UUID: id, Valid: true}); err != nil {
				return err
			}
		default:
			return domain.Conflict("migration %s is %s: there is nothing to cancel", id, m.Status)
		}
		out, err = s.getMigration(ctx, tx, p.OrgID, id)
		return err
	})
	if err != nil {
		return Migration{}, fmt.Errorf("cancel migration %s: %w", id, err)
	}
	return out, nil
}

// errSourceGone stops a drain whose node was deleted under it.
var errSourceGone = errors.New("the drained node was deleted")

// Sentinels of one move attempt, which roll its transaction back.
var (
	errRefused    = errors.New("the target refused the instance")
	errTargetGone = errors.New("the target node was deleted")
)

// RunDrain carries out a drain's moves (the node_drain job): the moves still
// pending, in order, each in its own transaction under the locks of the
// node, the chosen target and the instance, with the move endpoint's fit
// check. A move the target refuses (filled by a concurrent placement,
// cordoned meanwhile) is tried on the next best node. Before each move the
// drain stops if a cancel was asked for. Run again after a crash, it goes
// on from the moves still pending. While it runs, the job holds the
// drain's liveness lock, so a rescuer knows its worker is alive (see
// RescueDrains); should this process lose its liveness session, the drain
// stops and River retries it.
func (s *Service) RunDrain(ctx context.Context, args DrainArgs) error {
	org := args.OrganizationID
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	release, err := s.live.Hold(ctx, drainLockName(args.MigrationID), stop)
	if err != nil {
		return fmt.Errorf("drain %s: %w", args.MigrationID, err)
	}
	defer release()
	m, err := s.q.StartMigration(ctx, s.st.Pool, store.StartMigrationParams{OrganizationID: org, ID: args.MigrationID})
	if store.IsNoRows(err) {
		return nil // cancelled while queued, or ended
	}
	if err != nil {
		return fmt.Errorf("drain %s: start: %w", args.MigrationID, err)
	}
	if m.CancelRequested {
		return s.finishDrain(ctx, m, MigrationCancelled, "", "cancelled")
	}
	node, err := s.q.GetNode(ctx, s.st.Pool, store.GetNodeParams{OrganizationID: org, ID: m.NodeID})
	if store.IsNoRows(err) {
		return s.finishDrain(ctx, m, MigrationFailed, fmt.Sprintf("node %s was deleted during the drain", m.NodeName), "its node was deleted")
	}
	if err != nil {
		return fmt.Errorf("drain %s: node: %w", m.ID, err)
	}
	moves, err := s.q.ListMigrationMoves(ctx, s.st.Pool, m.ID)
	if err != nil {
		return fmt.Errorf("drain %s: moves: %w", m.ID, err)
	}
	t, err := s.readTargets(ctx, s.st.Pool, org, node)
	if err != nil {
		return fmt.Errorf("drain %s: %w", m.ID, err)
	}
	strategy, _ := checkStrategy(m.Strategy)
	d := &drainer{s: s, m: m, node: node, t: t, strategy: strategy, fresh: true}
	failed := false
	for _, mv := range moves {
		if mv.Status == MoveFailed {
			failed = true
		}
		if mv.Status != MovePending {
			continue
		}
		status, cancel, err := d.move(ctx, mv)
		if errors.Is(err, errSourceGone) {
			return s.finishDrain(ctx, m, MigrationFailed, fmt.Sprintf("node %s was deleted during the drain", m.NodeName), "its node was deleted")
		}
		if err != nil {
			return fmt.Errorf("drain %s: move %s: %w", m.ID, mv.InstanceName, err)
		}
		failed = failed || status == MoveFailed
		if cancel {
			return s.finishDrain(ctx, m, MigrationCancelled, "", "cancelled")
		}
	}
	if failed {
		return s.finishDrain(ctx, m, MigrationPartial, "", "")
	}
	return s.finishDrain(ctx, m, MigrationSucceeded, "", "")
}

// FailDrain ends a drain whose job gave up (its last attempt failed).
func (s *Service) FailDrain(ctx context.Context, args DrainArgs, cause error) error {
	m, err := s.q.GetMigration(ctx, s.st.Pool, store.GetMigrationParams{OrganizationID: args.OrganizationID, ID: args.MigrationID})
	if store.IsNoRows(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("drain %s: %w", args.MigrationID, err)
	}
	if m.Status != MigrationQueued && m.Status != MigrationRunning {
		return nil
	}
	return s.finishDrain(ctx, m, MigrationFailed, domain.Truncate(cause.Error(), 1000), "the drain failed")
}

func (s *Service) finishDrain(ctx context.Context, m store.Migration, status, errText, reason string) error {
	if err := s.q.FinishMigration(ctx, s.st.Pool, store.FinishMigrationParams{
		OrganizationID: m.OrganizationID, ID: m.ID, Status: status, Error: errText, Reason: reason,
	}); err != nil {
		return fmt.Errorf("drain %s: finish: %w", m.ID, err)
	}
	return nil
}

// drainer is one run of a drain.
type drainer struct {
	s        *Service
	m        store.Migration
	node     store.Node
	t        *targets
	strategy planner.Strategy
	// fresh: the targets were read since the last move was made, so a move
	// that fits nowhere in them fits nowhere now.
	fresh bool
}

// move makes one move, or records why it cannot be made, and answers the
// move's outcome and whether a cancel was asked for.
func (d *drainer) move(ctx context.Context, mv store.MigrationMove) (string, bool, error) {
	s, org := d.s, d.m.OrganizationID
	res := reservation(mv.CpuMillis, mv.MemoryMb, mv.DiskGb)
	for range maxTargetAttempts {
		i, reason := d.t.choose(res, d.strategy)
		if i < 0 {
			if !d.fresh { // what was full may have emptied meanwhile
				t, err := s.readTargets(ctx, s.st.Pool, org, d.node)
				if err != nil {
					return "", false, err
				}
				d.t, d.fresh = t, true
				continue
			}
			cancel, err := d.record(ctx, s.st.Pool, mv, MoveFailed, uuid.Nil, "", reason)
			return MoveFailed, cancel, err
		}
		to, toName := d.t.ids[i], d.t.nodes[i].Name
		var (
			status  string
			cancel  bool
			refused store.LockPlacementNodeRow
		)
		// Two statements between BEGIN and COMMIT: the locks of both
		// nodes, then the move with its record (see MoveAndRecord).
		err := s.st.InTx(ctx, func(tx pgx.Tx) error {
			target, err := d.lockPair(ctx, tx, to)
			if err != nil {
				return err
			}
			// An instance's reservation never changes once placed: the
			// move's copy of it is the instance's.
			if s.admit(target, res) != nil {
				refused = target
				return errRefused
			}
			row, err := s.q.MoveAndRecord(ctx, tx, store.MoveAndRecordParams{
				OrganizationID: org, MigrationID: d.m.ID, Position: mv.Position,
				InstanceID: mv.InstanceID, FromNodeID: d.m.NodeID, ToNodeID: to, ToNodeName: toName,
			})
			if err != nil {
				return fmt.Errorf("move: %w", err)
			}
			switch cancel = row.CancelRequested; {
			case row.Moved == 1:
				status = MoveMoved
			case cancel: // asked for before this move: it stays pending, then cancelled
				status = MovePending
			default:
				status = MoveSkipped
			}
			return nil
		})
		switch {
		case errors.Is(err, errRefused):
			d.t.update(i, refused) // as it is now: the next choice knows
			continue
		case errors.Is(err, errTargetGone):
			d.t.drop(i)
			continue
		case err != nil:
			return "", false, err
		}
		if status == MoveMoved {
			d.t.place(i, res)
			d.fresh = false
		}
		return status, cancel, nil
	}
	cancel, err := d.record(ctx, s.st.Pool, mv, MoveFailed, uuid.Nil, "", "every node chosen was filled or cordoned before the move: drain again to retry")
	return MoveFailed, cancel, err
}

// lockPair locks the drained node and the target in id order (the order of
// every placement and move) and returns the target.
func (d *drainer) lockPair(ctx context.Context, tx pgx.Tx, to uuid.UUID) (store.LockPlacementNodeRow, error) {
	rows, err := d.s.q.LockNodePair(ctx, tx, store.LockNodePairParams{OrganizationID: d.m.OrganizationID, Ids: []uuid.UUID{d.m.NodeID, to}})
	if err != nil {
		return store.LockPlacementNodeRow{}, fmt.Errorf("lock nodes: %w", err)
	}
	var target store.LockPlacementNodeRow
	source := false
	for _, r := range rows {
		switch r.ID {
		case to:
			target = store.LockPlacementNodeRow(r)
		case d.m.NodeID:
			source = true
		}
	}
	switch {
	case !source:
		return target, errSourceGone
	case target.ID != to:
		return target, errTargetGone
	}
	return target, nil
}

// record writes a move's outcome and answers whether a cancel was asked for.
func (d *drainer) record(ctx context.Context, db store.DBTX, mv store.MigrationMove, status string, to uuid.UUID, toName, reason string) (bool, error) {
	cancel, err := d.s.q.FinishMove(ctx, db, store.FinishMoveParams{
		OrganizationID: d.m.OrganizationID, MigrationID: d.m.ID, Position: mv.Position,
		Status: status, ToNodeID: uuid.NullUUID{UUID: to, Valid: to != uuid.Nil}, ToNodeName: toName, Reason: reason,
	})
	if err != nil {
		return false, fmt.Errorf("record move: %w", err)
	}
	return cancel, nil
}

// targets are a drain's candidate nodes as the planner sees them, kept up
// to date with the drain's own moves and with what each lock found.
type targets struct {
	provider, region string
	nodes            []planner.NodeCapacity
	ids              []uuid.UUID
	index            map[string]int
}

// readTargets reads the other nodes of the node's organization, provider and
// region with their reservations. A node takes instances only when ready:
// cordoned, stopped (powered off) and maintenance nodes, and nodes in any
// other status, are listed and rejected with their reason.
func (s *Service) readTargets(ctx context.Context, db store.DBTX, org uuid.UUID, node store.Node) (*targets, error) {
	rows, err := s.q.ListMoveTargets(ctx, db, store.ListMoveTargetsParams{OrganizationID: org, Provider: node.Provider, Region: node.Region, Exclude: node.ID})
	if err != nil {
		return nil, fmt.Errorf("list target nodes: %w", err)
	}
	t := &targets{provider: node.Provider, region: node.Region, nodes: make([]planner.NodeCapacity, len(rows)),
		ids: make([]uuid.UUID, len(rows)), index: make(map[string]int, len(rows))}
	for i, r := range rows {
		t.ids[i] = r.ID
		t.index[r.ID.String()] = i
		t.nodes[i] = s.capacity(store.LockPlacementNodeRow(r))
		t.nodes[i].ID, t.nodes[i].Name, t.nodes[i].Provider, t.nodes[i].Region = r.ID.String(), r.Name, node.Provider, node.Region
		setStatus(&t.nodes[i], r.Status)
	}
	return t, nil
}

func setStatus(n *planner.NodeCapacity, status string) {
	n.Ready = status == statusReady || status == statusCordoned || status == statusStopped
	n.Cordoned = status == statusCordoned
	n.Stopped = status == statusStopped
}

// choose picks the best node for need by suggest-fit's scoring, or answers
// -1 and why none can take it.
func (t *targets) choose(need planner.Resources, strategy planner.Strategy) (int, string) {
	// suggest-fit asks for positive needs; a zero one (written with SQL)
	// is scored as the smallest positive need and fits as zero.
	scored := planner.Resources{MilliCPU: max(need.MilliCPU, 1), MemoryMiB: max(need.MemoryMiB, 1), DiskMiB: max(need.DiskMiB, 1)}
	res, err := planner.SuggestFit(t.nodes, planner.FitRequest{Need: scored, Strategy: strategy})
	if err != nil {
		return -1, err.Error()
	}
	if len(res.Fits) > 0 {
		return t.index[res.Fits[0].ID], ""
	}
	if len(t.nodes) == 0 {
		return -1, fmt.Sprintf("no other node of provider %s in region %s", t.provider, t.region)
	}
	counts := map[string]int{}
	for _, r := range res.Rejected {
		for _, code := range r.Reasons.Codes() {
			counts[code]++
		}
	}
	codes := make([]string, 0, len(counts))
	for code := range counts {
		codes = append(codes, code)
	}
	slices.Sort(codes)
	parts := make([]string, len(codes))
	for i, code := range codes {
		parts[i] = fmt.Sprintf("%s %d", code, counts[code])
	}
	return -1, fmt.Sprintf("no other node of provider %s in region %s can take it (%d nodes: %s)", t.provider, t.region, len(t.nodes), strings.Join(parts, ", "))
}

// place counts a move onto node i.
func (t *targets) place(i int, need planner.Resources) {
	t.nodes[i].Reserved = t.nodes[i].Reserved.Add(need)
	t.nodes[i].Instances++
}

// update replaces node i's reservations and status with what its lock read.
func (t *targets) update(i int, n store.LockPlacementNodeRow) {
	t.nodes[i].Reserved = planner.Resources{MilliCPU: n.ReservedCpuMillis, MemoryMiB: n.ReservedMemoryMb, DiskMiB: n.ReservedDiskGb * 1024}
	t.nodes[i].Instances = int(n.InstanceCount)
	setStatus(&t.nodes[i], n.Status)
}

// drop takes a deleted node out of the choice.
func (t *targets) drop(i int) { t.nodes[i].Ready = false }

func reservation(cpu, mem, disk int32) planner.Resources {
	return planner.Resources{MilliCPU: int64(cpu), MemoryMiB: int64(mem), DiskMiB: int64(disk) * 1024}
}

func createdBy(p *domain.Principal) uuid.NullUUID {
	return uuid.NullUUID{UUID: p.UserID, Valid: p.UserID != uuid.Nil}
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func migrationView(m store.Migration) Migration {
	out := Migration{
		ID: m.ID, Kind: m.Kind, Status: m.Status, NodeID: m.NodeID, NodeName: m.NodeName,
		TargetNodeName: m.TargetNodeName, Strategy: m.Strategy, CancelRequested: m.CancelRequested, Error: m.Error,
		CreatedAt: m.CreatedAt, StartedAt: m.StartedAt, FinishedAt: m.FinishedAt,
	}
	if m.TargetNodeID.Valid {
		id := m.TargetNodeID.UUID
		out.TargetNodeID = &id
	}
	return out
}

func moveView(mv store.MigrationMove) Move {
	out := Move{
		InstanceID: mv.InstanceID, InstanceName: mv.InstanceName, Reservation: reservation(mv.CpuMillis, mv.MemoryMb, mv.DiskGb),
		Status: mv.Status, ToNodeName: mv.ToNodeName, Reason: mv.Reason, FinishedAt: mv.FinishedAt,
	}
	if mv.ToNodeID.Valid {
		id := mv.ToNodeID.UUID
		out.ToNodeID = &id
	}
	return out
}

// countMoves fills the counters from the moves listed.
func countMoves(m *Migration) {
	for _, mv := range m.Moves {
		addCount(m, mv.Status, 1)
	}
}

func addCount(m *Migration, status string, n int) {
	m.MovesTotal += n
	switch status {
	case MoveMoved:
		m.MovesDone += n
	case MovePending, MovePlanned:
		m.MovesLeft += n
	case MoveFailed:
		m.MovesFailed += n
	case MoveSkipped:
		m.MovesSkipped += n
	case MoveCancelled:
		m.MovesCancelled += n
	}
}
