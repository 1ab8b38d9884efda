// Package placement places game-server instances on an organization's nodes
// and removes them: the service behind /v1/instances. A placement reserves
// the instance's CPU, memory and disk on its node; the store's triggers keep
// each node's aggregate of those reservations, which suggest-fit and the
// fleet report (package capacity) read. A placement is refused unless the
// node's capacity, minus the OS overhead and the reservations already on
// it, holds the instance; the check runs under a lock on the node's row, so
// concurrent placements cannot overfill a node.
package placement

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/shardform/shardform/domain"
	"github.com/shardform/shardform/liveness"
	"github.com/shardform/shardform/planner"
	"github.com/shardform/shardform/store"
)

// Node statuses (see provision.NodeUpdate): only a ready node takes new
// instances.
const (
	statusReady       = "ready"
	statusCordoned    = "cordoned"
	statusMaintenance = "maintenance"
	statusStopped     = "stopped"     // powered off (nodeops): the store reads it from power_state
	statusUnreachable = "unreachable" // its agent went silent (agent.SweepUnreachable)
)

// lockAttempts bounds the retries when an instance moves between reading
// it and locking its node.
const lockAttempts = 5

// Config shapes the service. The zero value uses the planner's defaults.
type Config struct {
	// Overhead is kept free on every node for the OS; nil:
	// planner.DefaultOverhead(), as capacity.Service uses it.
	Overhead *planner.Resources
	// Now is the clock of the migration records (nil: time.Now).
	Now func() time.Time
	// Log receives what the drain rescuer cannot return (nil: discard).
	Log *slog.Logger
}

// Service places, moves, lists and removes instances.
type Service struct {
	st       *store.Store
	q        *store.Queries
	overhead planner.Resources
	queue    Queue
	now      func() time.Time
	log      *slog.Logger
	live     *liveness.Session // the liveness session of this process's drains
}

// drainLivenessName names the drains' liveness session in pg_stat_activity.
const drainLivenessName = "shardform drain liveness"

// New builds the service.
func New(st *store.Store, cfg Config) *Service {
	s := &Service{st: st, q: st.Q, overhead: planner.DefaultOverhead(), now: time.Now, log: cfg.Log}
	if cfg.Overhead != nil {
		s.overhead = *cfg.Overhead
	}
	if cfg.Now != nil {
		s.now = cfg.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.live = liveness.New(func() *pgx.ConnConfig { return liveness.Config(st.Pool.Config().ConnConfig, drainLivenessName) }, s.log)
	return s
}

// Instance is a game-server instance placed on a node.
type Instance struct {
	ID       uuid.UUID `json:"id"`
	Name     string    `json:"name"`
	NodeID   uuid.UUID `json:"node_id"`
	NodeName string    `json:"node_name"`
	Template string    `json:"template"`
	Players  int       `json:"players"`
	// Reservation is what the instance holds on its node, in the units of
	// suggest-fit's free capacity (disk in whole GiB).
	Reservation planner.Resources `json:"reservation"`
	CreatedAt   time.Time         `json:"created_at"`
}

// CreateRequest is the body of POST /v1/instances. cpu is in cores,
// memory_gb and disk_gb in GB (GiB) per instance; with a template, the
// requirement derived from it (for players, or its default) fills the
// resources not given.
type CreateRequest struct {
	NodeID   string   `json:"node_id"`
	Name     string   `json:"name"`
	Template string   `json:"template"`
	Players  int      `json:"players"`
	CPU      *float64 `json:"cpu"`
	MemoryGB *float64 `json:"memory_gb"`
	DiskGB   *float64 `json:"disk_gb"`
}

// MoveRequest is the body of POST /v1/instances/{id}/move.
type MoveRequest struct {
	NodeID string `json:"node_id"`
}

// Filter narrows GET /v1/instances.
type Filter struct {
	NodeID   uuid.NullUUID
	Template string
}

func need(p *domain.Principal, perm domain.Permission) error {
	if p == nil || !p.HasOrg {
		return domain.Forbidden("you belong to no organization")
	}
	if !p.Can(perm) {
		return domain.Forbidden("missing permission %s", perm)
	}
	return nil
}

// Create places an instance on a node of the caller's organization.
func (s *Service) Create(ctx context.Context, p *domain.Principal, r CreateRequest) (Instance, error) {
	if err := need(p, domain.PermNodesWrite); err != nil {
		return Instance{}, err
	}
	nodeID, err := parseNodeID(r.NodeID)
	if err != nil {
		return Instance{}, err
	}
	if err := checkName(r.Name); err != nil {
		return Instance{}, err
	}
	res, players, err := requirement(r)
	if err != nil {
		return Instance{}, err
	}
	var out Instance
	err = s.st.InTx(ctx, func(tx pgx.Tx) error {
		node, err := s.lockNode(ctx, tx, p.OrgID, nodeID)
		if err != nil {
			return err
		}
		if err := s.admit(node, res); err != nil {
			return err
		}
		row, err := s.q.InsertInstance(ctx, tx, store.InsertInstanceParams{
			OrganizationID: p.OrgID, NodeID: nodeID, Name: r.Name, Template: r.Template, Players: int32(players),
			CpuMillis: int32(res.MilliCPU), MemoryMb: int32(res.MemoryMiB), DiskGb: int32(res.DiskMiB / 1024),
		})
		if store.IsUniqueViolation(err) {
			return domain.Conflict("an instance named %q already exists in this organization", r.Name)
		}
		if err != nil {
			return fmt.Errorf("insert instance: %w", err)
		}
		out, err = s.get(ctx, tx, p.OrgID, row.ID)
		return err
	})
	if err != nil {
		return Instance{}, fmt.Errorf("place instance %q on node %s: %w", r.Name, nodeID, err)
	}
	return out, nil
}

// Get returns one instance of the caller's organization.
func (s *Service) Get(ctx context.Context, p *domain.Principal, id uuid.UUID) (Instance, error) {
	if err := need(p, domain.PermNodesRead); err != nil {
		return Instance{}, err
	}
	return s.get(ctx, s.st.Pool, p.OrgID, id)
}

// get reads an instance on the pool or inside a transaction (the answer of
// a change, read before its commit).
func (s *Service) get(ctx context.Context, db store.DBTX, org, id uuid.UUID) (Instance, error) {
	row, err := s.q.GetInstance(ctx, db, store.GetInstanceParams{OrganizationID: org, ID: id})
	if store.IsNoRows(err) {
		return Instance{}, domain.NotFound("instance")
	}
	if err != nil {
		return Instance{}, fmt.Errorf("get instance %s: %w", id, err)
	}
	return instanceView(store.ListInstancesRow(row)), nil
}

// List returns one page of the organization's instances, oldest first.
func (s *Service) List(ctx context.Context, p *domain.Principal, f Filter, page domain.Page) ([]Instance, int64, error) {
	if err := need(p, domain.PermNodesRead); err != nil {
		return nil, 0, err
	}
	var template *string
	if f.Template != "" {
		template = &f.Template
	}
	rows, err := s.q.ListInstances(ctx, s.st.Pool, store.ListInstancesParams{
		OrganizationID: p.OrgID, NodeID: f.NodeID, Template: template, Lim: page.Limit, Off: page.Offset(),
	})
	if err != nil {
		return nil, 0, fmt.Errorf("list instances: %w", err)
	}
	total, err := s.q.CountInstances(ctx, s.st.Pool, store.CountInstancesParams{OrganizationID: p.OrgID, NodeID: f.NodeID, Template: template})
	if err != nil {
		return nil, 0, fmt.Errorf("count instances: %w", err)
	}
	out := make([]Instance, len(rows))
	for i, r := range rows {
		out[i] = instanceView(r)
	}
	return out, total, nil
}

// Delete removes an instance; its reservation leaves its node.
func (s *Service) Delete(ctx context.Context, p *domain.Principal, id uuid.UUID) error {
	if err := need(p, domain.PermNodesWrite); err != nil {
		return err
	}
	err := s.st.InTx(ctx, func(tx pgx.Tx) error {
		if _, err := s.lockInstance(ctx, tx, p.OrgID, id, uuid.Nil); err != nil {
			return err
		}
		if _, err := s.q.DeleteInstance(ctx, tx, store.DeleteInstanceParams{OrganizationID: p.OrgID, ID: id}); err != nil {
			return fmt.Errorf("delete: %w", err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete instance %s: %w", id, err)
	}
	return nil
}

// Move places an instance on another node of the organization, under the
// same rules as a new placement; its reservation moves with it. Moving to
// the node it is on changes nothing.
func (s *Service) Move(ctx context.Context, p *domain.Principal, id uuid.UUID, r MoveRequest) (Instance, error) {
	if err := need(p, domain.PermNodesWrite); err != nil {
		return Instance{}, err
	}
	to, err := parseNodeID(r.NodeID)
	if err != nil {
		return Instance{}, err
	}
	var out Instance
	err = s.st.InTx(ctx, func(tx pgx.Tx) error {
		locked, err := s.lockInstance(ctx, tx, p.OrgID, id, to)
		if err != nil {
			return err
		}
		if locked.inst.NodeID != to {
			if err := s.move(ctx, tx, p.OrgID, locked, to); err != nil {
				return err
			}
		}
		out, err = s.get(ctx, tx, p.OrgID, id)
		return err
	})
	if err != nil {
		return Instance{}, fmt.Errorf("move instance %s to node %s: %w", id, to, err)
	}
	return out, nil
}

// move checks the locked target node and moves the locked instance there.
func (s *Service) move(ctx context.Context, tx pgx.Tx, org uuid.UUID, locked lockedInstance, to uuid.UUID) error {
	res := planner.Resources{MilliCPU: int64(locked.inst.CpuMillis), MemoryMiB: int64(locked.inst.MemoryMb), DiskMiB: int64(locked.inst.DiskGb) * 1024}
	if err := s.admit(locked.target, res); err != nil {
		return err
	}
	if err := s.q.MoveInstance(ctx, tx, store.MoveInstanceParams{OrganizationID: org, ID: locked.inst.ID, NodeID: to}); err != nil {
		return fmt.Errorf("update: %w", err)
	}
	return nil
}

// lockedInstance is an instance locked together with its node and, for a
// move, the target node.
type lockedInstance struct {
	inst   store.LockInstanceRow
	target store.LockPlacementNodeRow
}

// lockInstance locks an instance's node (and target, when not uuid.Nil)
// before the instance row, in node id order: the order a node's deletion
// takes (the node, then its instances by the cascade), so deleting a node
// and moving or deleting one of its instances cannot deadlock. An instance
// that moved between reading and locking is read again.
func (s *Service) lockInstance(ctx context.Context, tx pgx.Tx, org, id, target uuid.UUID) (lockedInstance, error) {
	for range lockAttempts {
		cur, err := s.q.GetInstance(ctx, tx, store.GetInstanceParams{OrganizationID: org, ID: id})
		if store.IsNoRows(err) {
			return lockedInstance{}, domain.NotFound("instance")
		}
		if err != nil {
			return lockedInstance{}, fmt.Errorf("read instance: %w", err)
		}
		ids := []uuid.UUID{cur.NodeID}
		if target != uuid.Nil && target != cur.NodeID {
			ids = append(ids, target)
			if bytes.Compare(target[:], cur.NodeID[:]) < 0 { // Postgres orders uuids bytewise
				ids[0], ids[1] = ids[1], ids[0]
			}
		}
		var out lockedInstance
		for _, nid := range ids {
			n, err := s.lockNode(ctx, tx, org, nid)
			if err != nil {
				return lockedInstance{}, err
			}
			if nid == target {
				out.target = n
			}
		}
		out.inst, err = s.q.LockInstance(ctx, tx, store.LockInstanceParams{OrganizationID: org, ID: id})
		if store.IsNoRows(err) {
			return lockedInstance{}, domain.NotFound("instance")
		}
		if err != nil {
			return lockedInstance{}, fmt.Errorf("lock instance: %w", err)
		}
		if out.inst.NodeID == cur.NodeID {
			return out, nil
		}
		// Moved meanwhile: its node is not the one locked.
	}
	return lockedInstance{}, domain.Conflict("instance %s keeps moving: try again", id)
}

// lockNode locks a node of the organization for a placement (404 for
// another organization's node or none).
func (s *Service) lockNode(ctx context.Context, tx pgx.Tx, org, id uuid.UUID) (store.LockPlacementNodeRow, error) {
	n, err := s.q.LockPlacementNode(ctx, tx, store.LockPlacementNodeParams{OrganizationID: org, ID: id})
	if store.IsNoRows(err) {
		return store.LockPlacementNodeRow{}, domain.NotFound("node")
	}
	if err != nil {
		return store.LockPlacementNodeRow{}, fmt.Errorf("lock node %s: %w", id, err)
	}
	return n, nil
}

// admit checks that a locked node takes new instances and holds need.
func (s *Service) admit(n store.LockPlacementNodeRow, need planner.Resources) error {
	if err := schedulable(n); err != nil {
		return err
	}
	free := s.capacity(n).Free()
	if short := Shortfall(free, need); len(short) > 0 {
		return domain.Conflict("node %s cannot hold the instance: %s%s", n.Name, strings.Join(short, "; "), resizeNote(n))
	}
	return nil
}

// resizeNote says why a node holds less than its size while a resize of
// it is pending.
func resizeNote(n store.LockPlacementNodeRow) string {
	if n.DesiredInstanceType == nil {
		return ""
	}
	return fmt.Sprintf(" (a resize to %s is pending: until it is applied, the node counts the smaller of both sizes)", *n.DesiredInstanceType)
}

// schedulable refuses a node that takes no new instances: only a ready
// node does.
func schedulable(n store.LockPlacementNodeRow) error {
	switch n.Status {
	case statusReady:
	case statusCordoned:
		return domain.Conflict("node %s is cordoned: it takes no new instances", n.Name)
	case statusMaintenance:
		return domain.Conflict("node %s is in maintenance: it takes no new instances", n.Name)
	case statusStopped:
		return domain.Conflict("node %s is stopped: start it (POST /v1/nodes/%s/power/start) before placing instances on it", n.Name, n.ID)
	case statusUnreachable:
		return domain.Conflict("node %s is unreachable (no heartbeat from its agent): it takes no new instances", n.Name)
	default: // any status but ready
		return domain.Conflict("node %s is %s: it takes no new instances", n.Name, n.Status)
	}
	return nil
}

// capacity is the node as suggest-fit sees it (capacity.Service.nodeCapacity).
// While a resize of the node is pending (asked for, not applied yet), each
// resource counts the smaller of the current and the desired size: what
// is placed now must still fit once a downsize is applied.
func (s *Service) capacity(n store.LockPlacementNodeRow) planner.NodeCapacity {
	vcpu, mem, disk := n.Vcpu, n.MemoryMb, n.DiskGb
	if n.DesiredVcpu.Valid && n.DesiredMemoryMb.Valid && n.DesiredDiskGb.Valid {
		vcpu, mem, disk = min(vcpu, n.DesiredVcpu.Int32), min(mem, n.DesiredMemoryMb.Int32), min(disk, n.DesiredDiskGb.Int32)
	}
	raw := planner.Resources{MilliCPU: int64(vcpu) * 1000, MemoryMiB: int64(mem), DiskMiB: int64(disk) * 1024}
	return planner.NodeCapacity{
		Capacity: planner.Usable(raw, s.overhead, 0),
		Reserved: planner.Resources{MilliCPU: n.ReservedCpuMillis, MemoryMiB: n.ReservedMemoryMb, DiskMiB: n.ReservedDiskGb * 1024},
	}
}

// Shortfall says which resources free lacks to hold need, one phrase each
// ("insufficient memory: 1536 MiB free, the instance needs 2048 MiB"),
// and nothing when it fits.
func Shortfall(free, need planner.Resources) []string {
	return shortfall(free, need, "the instance needs")
}

// shortfall is Shortfall for what needs it ("the instances need").
func shortfall(free, need planner.Resources, needs string) []string {
	var out []string
	if free.MilliCPU < need.MilliCPU {
		out = append(out, fmt.Sprintf("insufficient cpu: %dm free, %s %dm", max(free.MilliCPU, 0), needs, need.MilliCPU))
	}
	if free.MemoryMiB < need.MemoryMiB {
		out = append(out, fmt.Sprintf("insufficient memory: %d MiB free, %s %d MiB", max(free.MemoryMiB, 0), needs, need.MemoryMiB))
	}
	if free.DiskMiB < need.DiskMiB {
		out = append(out, fmt.Sprintf("insufficient disk: %d GiB free, %s %d GiB", max(free.DiskMiB, 0)/1024, needs, need.DiskMiB/1024))
	}
	return out
}

// requirement turns a request into the reservation (disk rounded up to
// whole GiB, the unit the store keeps) and the players it was sized for.
func requirement(r CreateRequest) (planner.Resources, int, error) {
	cpu, mem, disk := r.CPU, r.MemoryGB, r.DiskGB
	players := 0
	if r.Template == "" {
		if r.Players != 0 {
			return planner.Resources{}, 0, domain.Invalid("players", "needs a template")
		}
		switch {
		case cpu == nil:
			return planner.Resources{}, 0, domain.Invalid("cpu", "is required (cores), or give a template")
		case mem == nil:
			return planner.Resources{}, 0, domain.Invalid("memory_gb", "is required (GB), or give a template")
		case disk == nil:
			return planner.Resources{}, 0, domain.Invalid("disk_gb", "is required (GB), or give a template")
		}
	} else {
		t, err := planner.TemplateByName(r.Template)
		if err != nil {
			return planner.Resources{}, 0, err
		}
		req, err := t.Requirement(r.Players, 1)
		if err != nil {
			return planner.Resources{}, 0, err
		}
		players = req.Players
		// Integer MiB and millicores are exact in these units.
		cpu = orDefault(cpu, float64(req.Per.MilliCPU)/1000)
		mem = orDefault(mem, float64(req.Per.MemoryMiB)/1024)
		disk = orDefault(disk, float64(req.Per.DiskMiB)/1024)
	}
	req, err := planner.NewRequirement(*cpu, *mem, *disk, 1)
	if err != nil {
		return planner.Resources{}, 0, err
	}
	per := req.Per
	per.DiskMiB = (per.DiskMiB + 1023) / 1024 * 1024
	return per, players, nil
}

func orDefault(v *float64, def float64) *float64 {
	if v != nil {
		return v
	}
	return &def
}

func parseNodeID(s string) (uuid.UUID, error) {
	if s == "" {
		return uuid.Nil, domain.Invalid("node_id", "is required")
	}
	id, err := domain.ParseID("node_id", s)
	if err != nil {
		return uuid.Nil, domain.Invalid("node_id", "must be a node id (a canonical lowercase UUID)")
	}
	return id, nil
}

// checkName requires a DNS label: 1-63 lowercase letters, digits and
// hyphens, not starting or ending with a hyphen.
func checkName(name string) error {
	if name == "" {
		return domain.Invalid("name", "is required")
	}
	return domain.DNSLabel("name", name)
}

func instanceView(r store.ListInstancesRow) Instance {
	return Instance{
		ID: r.ID, Name: r.Name, NodeID: r.NodeID, NodeName: r.NodeName, Template: r.Template, Players: int(r.Players),
		Reservation: planner.Resources{MilliCPU: int64(r.CpuMillis), MemoryMiB: int64(r.MemoryMb), DiskMiB: int64(r.DiskGb) * 1024},
		CreatedAt:   r.CreatedAt,
	}
}
