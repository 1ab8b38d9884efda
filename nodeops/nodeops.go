// Package nodeops carries out operations on nodes that Terraform does not
// model: power actions (start, stop, reboot) through the cloud's API
// (hcloud-go, the AWS SDK for Go v2; the local driver's machines live in
// Postgres). The API records an action and queues its node_action job in
// one transaction; the worker calls the cloud, then records the outcome
// and the node's power state together with the job's completion.
package nodeops

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/shardform/shardform/credentials"
	"github.com/shardform/shardform/domain"
	"github.com/shardform/shardform/providers"
	"github.com/shardform/shardform/seal"
	"github.com/shardform/shardform/store"
)

// Action kinds and statuses.
const (
	KindStart  = "start"
	KindStop   = "stop"
	KindReboot = "reboot"

	StatusQueued    = "queued"
	StatusRunning   = "running"
	StatusSucceeded = "succeeded"
	StatusFailed    = "failed"
)

// The node power states shardform records (nodes.power_state).
const (
	recordedRunning = "running"
	recordedStopped = "stopped"
)

// DefaultStopTimeout is how long a graceful stop may take before the node
// is powered off (SHARDFORM_STOP_TIMEOUT).
const DefaultStopTimeout = 60 * time.Second

// DefaultWorkerLostAfter is how long a running action's worker may go
// without a heartbeat before the action is ended failed ("worker lost");
// the worker beats every fifth of it.
const DefaultWorkerLostAfter = 30 * time.Second

// DefaultAddressRetry is the first pause between the tries of the address
// read after a start or reboot (3 tries: after 0, 2 and 6 s by default).
const DefaultAddressRetry = 2 * time.Second

// addressTries bounds the address reads inside a power action's job; a
// node_addresses job (retried by River) takes over after them.
const addressTries = 3

// Power is one cloud's power client (providers.HetznerPower, providers.AWSPower).
type Power interface {
	PowerStatus(ctx context.Context, m providers.Machine) (providers.PowerStatus, error)
	Start(ctx context.Context, m providers.Machine) error
	Stop(ctx context.Context, m providers.Machine, force bool, grace time.Duration) (hard bool, err error)
	Reboot(ctx context.Context, m providers.Machine) error
}

// DNS keeps a node's auto-DNS records true to its addresses (dns.Service):
// called inside the transaction that records new addresses, it updates
// the node's A/AAAA records and inserts their dns_sync jobs in tx, or does
// nothing when auto-DNS manages no records of the node. It never calls
// Cloudflare itself.
type DNS interface {
	NodeAddressChanged(ctx context.Context, tx pgx.Tx, n store.Node) error
}

// localProvider is the driver whose machines live in Postgres.
const localProvider = "local"

// Config is what New needs beside the store and the sealer.
type Config struct {
	// Clouds are the power clients by node provider ("hetzner", "aws");
	// "local" is built in. A node of another provider has no power actions.
	Clouds map[string]Power
	// StopTimeout: see DefaultStopTimeout (0: the default).
	StopTimeout time.Duration
	// WorkerLostAfter: see DefaultWorkerLostAfter (0: the default).
	WorkerLostAfter time.Duration
	// AddressRetry: see DefaultAddressRetry (0: the default).
	AddressRetry time.Duration
	Logger       *slog.Logger     // nil: discard
	Now          func() time.Time // nil: time.Now
}

// Service records and carries out node actions.
type Service struct {
	st          *store.Store
	q           *store.Queries
	sealer      *seal.Sealer
	clouds      map[string]Power
	stopTimeout time.Duration
	lostAfter   time.Duration
	addrRetry   time.Duration
	queue       Queue
	dns         DNS
	log         *slog.Logger
	now         func() time.Time
}

// New builds the service.
func New(st *store.Store, sealer *seal.Sealer, cfg Config) *Service {
	if cfg.StopTimeout <= 0 {
		cfg.StopTimeout = DefaultStopTimeout
	}
	if cfg.WorkerLostAfter <= 0 {
		cfg.WorkerLostAfter = DefaultWorkerLostAfter
	}
	if cfg.AddressRetry <= 0 {
		cfg.AddressRetry = DefaultAddressRetry
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Service{st: st, q: st.Q, sealer: sealer, clouds: cfg.Clouds, stopTimeout: cfg.StopTimeout, lostAfter: cfg.WorkerLostAfter,
		addrRetry: cfg.AddressRetry, log: cfg.Logger, now: cfg.Now}
}

// UseQueue sets the job queue (the River client, built after its workers).
func (s *Service) UseQueue(q Queue) { s.queue = q }

// UseDNS makes a node's new addresses (after a start or reboot, or found
// by a status read) update its auto-DNS records.
func (s *Service) UseDNS(d DNS) { s.dns = d }

// StopTimeout is how long a graceful stop may take.
func (s *Service) StopTimeout() time.Duration { return s.stopTimeout }

// Action is one power action as the API shows it.
type Action struct {
	ID     uuid.UUID `json:"id"`
	NodeID uuid.UUID `json:"node_id"`
	Kind   string    `json:"kind"`  // start, stop or reboot
	Force  bool      `json:"force"` // a stop that powered off at once
	// Status is queued, running, succeeded or failed.
	Status string `json:"status"`
	// Error is why it failed (the cloud's message), or why the attempt
	// under way is a retry.
	Error      string     `json:"error"`
	Attempt    int        `json:"attempt"`
	CreatedAt  time.Time  `json:"created_at"`
	StartedAt  *time.Time `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at"`
}

func view(a store.NodeAction) Action {
	return Action{ID: a.ID, NodeID: a.NodeID, Kind: a.Kind, Force: a.Force, Status: a.Status, Error: a.Error,
		Attempt: int(a.Attempt), CreatedAt: a.CreatedAt, StartedAt: a.StartedAt, FinishedAt: a.FinishedAt}
}

// PowerStatus is GET /v1/nodes/{id}/power/status: the cloud's power state
// now, what shardform records, and the latest action.
type PowerStatus struct {
	NodeID uuid.UUID `json:"node_id"`
	// PowerState is the cloud's answer: running, stopped, starting,
	// stopping or unknown (unknown also when the cloud could not be asked:
	// Error says why).
	PowerState string `json:"power_state"`
	// ProviderState is the cloud's own word (hetzner "off", aws "stopped").
	ProviderState string `json:"provider_state"`
	// RecordedPowerState is what shardform records (running or stopped):
	// the node's status reads "stopped" while it is stopped. A reading that
	// differs while no action is going updates it.
	RecordedPowerState string    `json:"recorded_power_state"`
	CheckedAt          time.Time `json:"checked_at"`
	Error              string    `json:"error,omitempty"`
	// Action is the latest action, null before the first.
	Action *Action `json:"action"`
}

func need(p *domain.Principal, perm domain.Permission) error {
	if !p.HasOrg {
		return domain.Forbidden("you belong to no organization")
	}
	if !p.Can(perm) {
		return domain.Forbidden("missing permission %s", perm)
	}
	return nil
}

func (s *Service) node(ctx context.Context, db store.DBTX, org, id uuid.UUID) (store.Node, error) {
	n, err := s.q.GetNode(ctx, db, store.GetNodeParams{OrganizationID: org, ID: id})
	if store.IsNoRows(err) {
		return store.Node{}, domain.NotFound("node")
	}
	if err != nil {
		return store.Node{}, fmt.Errorf("get node %s: %w", id, err)
	}
	return n, nil
}

// secret opens the credential a node's power actions run with: its
// provision request's, else the organization's default for its provider.
func (s *Service) secret(ctx context.Context, db store.DBTX, n store.Node) (map[string]string, error) {
	var row store.Credential
	var err error = pgx.ErrNoRows
	if n.ProvisionID.Valid {
		var cred uuid.NullUUID
		cred, err = s.q.GetProvisionCredentialID(ctx, db, store.GetProvisionCredentialIDParams{OrganizationID: n.OrganizationID, ID: n.ProvisionID.UUID})
		if err == nil && cred.Valid {
			row, err = s.q.GetCredential(ctx, db, store.GetCredentialParams{OrganizationID: n.OrganizationID, ID: cred.UUID})
		} else if err == nil {
			err = pgx.ErrNoRows
		}
		if err != nil && !store.IsNoRows(err) {
			return nil, fmt.Errorf("node %s: read its provision credential: %w", n.ID, err)
		}
	}
	if store.IsNoRows(err) {
		row, err = s.q.GetDefaultCredential(ctx, db, store.GetDefaultCredentialParams{OrganizationID: n.OrganizationID, Provider: n.Provider})
	}
	if store.IsNoRows(err) {
		return nil, &domain.PublicError{Kind: domain.ErrUnprocessable, Message: fmt.Sprintf(
			"node %s has no %s credential: its provision request has none and the organization has no default one (POST /v1/credentials)", n.Name, n.Provider)}
	}
	if err != nil {
		return nil, fmt.Errorf("node %s: read the default %s credential: %w", n.ID, n.Provider, err)
	}
	sec, err := credentials.Open(s.sealer, row)
	if err != nil {
		return nil, fmt.Errorf("node %s: open credential %s: %w", n.ID, row.ID, err)
	}
	return sec, nil
}

// canOperate refuses nodes whose provider has no power actions here, and
// cloud nodes without a server id.
func (s *Service) canOperate(n store.Node) error {
	if n.Provider == localProvider {
		return nil
	}
	if _, ok := s.clouds[n.Provider]; !ok {
		return &domain.PublicError{Kind: domain.ErrUnprocessable, Message: fmt.Sprintf("node %s is a %s node: shardform has no power actions for that provider", n.Name, n.Provider)}
	}
	if n.ServerID == "" {
		return &domain.PublicError{Kind: domain.ErrUnprocessable, Message: fmt.Sprintf("node %s has no server id: its cloud server is unknown", n.Name)}
	}
	return nil
}

// Request records a power action on a node and queues its job (202):
// nodes:write; force only with a stop; 409 naming the action when the
// node has one queued or running, naming the run when a Terraform run of
// its provision request is queued or running (a resize's apply may stop
// and start the machine), or when a reboot is asked of a node shardform
// records as stopped.
func (s *Service) Request(ctx context.Context, p *domain.Principal, nodeID uuid.UUID, kind string, force bool) (Action, error) {
	if err := need(p, domain.PermNodesWrite); err != nil {
		return Action{}, err
	}
	switch kind {
	case KindStart, KindStop, KindReboot:
	default:
		return Action{}, domain.Invalid("kind", "must be start, stop or reboot")
	}
	if force && kind != KindStop {
		return Action{}, domain.Invalid("force", "only a stop can be forced")
	}
	n, err := s.node(ctx, s.st.Pool, p.OrgID, nodeID)
	if err != nil {
		return Action{}, err
	}
	if err := s.canOperate(n); err != nil {
		return Action{}, err
	}
	if n.Provider != localProvider {
		// Refuse now what the worker could not do.
		if _, err := s.secret(ctx, s.st.Pool, n); err != nil {
			return Action{}, err
		}
	}
	if kind == KindReboot && n.PowerState == recordedStopped {
		return Action{}, domain.Conflict("node %s is stopped: start it (POST /v1/nodes/%s/power/start) instead of rebooting it", n.Name, n.ID)
	}
	if s.queue == nil {
		return Action{}, errors.New("request node action: no job queue")
	}
	var out Action
	err = s.st.InTx(ctx, func(tx pgx.Tx) error {
		if err := s.noRun(ctx, tx, n); err != nil {
			return err
		}
		insert := store.InsertNodeActionParams{OrganizationID: p.OrgID, NodeID: n.ID, Kind: kind, Force: force,
			CreatedBy: uuid.NullUUID{UUID: p.UserID, Valid: p.UserID != uuid.Nil}}
		a, err := s.q.InsertNodeAction(ctx, tx, insert)
		if store.IsNoRows(err) {
			// Busy, unless the action in progress lost its job.
			if ended, err := s.endOrphan(ctx, tx, n); err != nil || !ended {
				if err != nil {
					return err
				}
				return s.busy(ctx, tx, n)
			}
			a, err = s.q.InsertNodeAction(ctx, tx, insert)
		}
		if store.IsNoRows(err) {
			return s.busy(ctx, tx, n)
		}
		if err != nil {
			return fmt.Errorf("record %s of node %s: %w", kind, n.ID, err)
		}
		res, err := s.queue.InsertTx(ctx, tx, ActionArgs{OrganizationID: p.OrgID, NodeID: n.ID, ActionID: a.ID}, nil)
		if err != nil {
			return fmt.Errorf("queue %s of node %s: %w", kind, n.ID, err)
		}
		if res.UniqueSkippedAsDuplicate {
			// A job of an earlier action has not been completed yet.
			return domain.Conflict("node %s still has a power action job (%d) going: try again in a moment", n.Name, res.Job.ID)
		}
		if err := s.q.SetNodeActionJob(ctx, tx, store.SetNodeActionJobParams{OrganizationID: p.OrgID, ID: a.ID, JobID: pgInt8(res.Job.ID)}); err != nil {
			return fmt.Errorf("record the job of action %s: %w", a.ID, err)
		}
		out = view(a)
		return nil
	})
	return out, err
}

// noRun is the 409 naming the Terraform run of the node's provision
// request that is queued or running. It locks the request (as every new
// run does), so a run queued meanwhile waits for this transaction and sees
// its action (provision refuses a run while a power action is going).
func (s *Service) noRun(ctx context.Context, tx pgx.Tx, n store.Node) error {
	if !n.ProvisionID.Valid {
		return nil
	}
	_, err := s.q.GetProvisionRequestForUpdate(ctx, tx, store.GetProvisionRequestForUpdateParams{OrganizationID: n.OrganizationID, ID: n.ProvisionID.UUID})
	if store.IsNoRows(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("node %s: lock its provision request: %w", n.ID, err)
	}
	run, err := s.q.ActiveRunOf(ctx, tx, store.ActiveRunOfParams{OrganizationID: n.OrganizationID, ProvisionID: n.ProvisionID.UUID})
	if store.IsNoRows(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("node %s: read the runs of its provision request: %w", n.ID, err)
	}
	return domain.Conflict("node %s has a %s run in progress (%s, %s): wait for it to finish (GET /v1/runs/%s) before a power action",
		n.Name, run.Kind, run.ID, run.Status, run.ID)
}

// endOrphan fails ("worker lost") the node's action in progress when no
// live worker will carry it out: its job ended without recording an
// outcome, or is running without a heartbeat for longer than the
// lost-worker bound. It reports whether it did.
func (s *Service) endOrphan(ctx context.Context, db store.DBTX, n store.Node) (bool, error) {
	a, err := s.q.GetActiveNodeAction(ctx, db, store.GetActiveNodeActionParams{OrganizationID: n.OrganizationID, NodeID: n.ID})
	if store.IsNoRows(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("node %s: read its action in progress: %w", n.ID, err)
	}
	ended, err := store.EndOrphanNodeAction(ctx, db, a.ID, s.lostAfter)
	if err != nil {
		return false, fmt.Errorf("node %s: end action %s: %w", n.ID, a.ID, err)
	}
	if ended {
		s.log.WarnContext(ctx, "a power action lost its worker: the action is failed", slog.String("action_id", a.ID.String()),
			slog.String("node_id", n.ID.String()), slog.String("organization_id", n.OrganizationID.String()))
	}
	return ended, nil
}

// busy is the 409 naming the node's action in progress.
func (s *Service) busy(ctx context.Context, db store.DBTX, n store.Node) error {
	a, err := s.q.GetActiveNodeAction(ctx, db, store.GetActiveNodeActionParams{OrganizationID: n.OrganizationID, NodeID: n.ID})
	if store.IsNoRows(err) {
		return domain.Conflict("node %s has a power action in progress: try again in a moment", n.Name)
	}
	if err != nil {
		return fmt.Errorf("node %s: read its action in progress: %w", n.ID, err)
	}
	return domain.Conflict("node %s has a %s action in progress (%s, %s, asked at %s): wait for it to finish (GET /v1/nodes/%s/actions)",
		n.Name, a.Kind, a.ID, a.Status, a.CreatedAt.UTC().Format(time.RFC3339), n.ID)
}

// ListActions lists a node's actions, newest first (nodes:read).
func (s *Service) ListActions(ctx context.Context, p *domain.Principal, nodeID uuid.UUID, page domain.Page) ([]Action, int64, error) {
	if err := need(p, domain.PermNodesRead); err != nil {
		return nil, 0, err
	}
	if _, err := s.node(ctx, s.st.Pool, p.OrgID, nodeID); err != nil {
		return nil, 0, err
	}
	total, err := s.q.CountNodeActions(ctx, s.st.Pool, store.CountNodeActionsParams{OrganizationID: p.OrgID, NodeID: nodeID})
	if err != nil {
		return nil, 0, fmt.Errorf("count actions of node %s: %w", nodeID, err)
	}
	rows, err := s.q.ListNodeActions(ctx, s.st.Pool, store.ListNodeActionsParams{OrganizationID: p.OrgID, NodeID: nodeID, Lim: page.Limit, Off: page.Offset()})
	if err != nil {
		return nil, 0, fmt.Errorf("list actions of node %s: %w", nodeID, err)
	}
	out := make([]Action, len(rows))
	for i, a := range rows {
		out[i] = view(a)
	}
	return out, total, nil
}

// Status asks the cloud for the node's power state (nodes:read). When no
// action is going and the cloud says running or stopped, a record that
// differs is corrected: someone powered the node on or off outside
// shardform.
func (s *Service) Status(ctx context.Context, p *domain.Principal, nodeID uuid.UUID) (PowerStatus, error) {
	if err := need(p, domain.PermNodesRead); err != nil {
		return PowerStatus{}, err
	}
	n, err := s.node(ctx, s.st.Pool, p.OrgID, nodeID)
	if err != nil {
		return PowerStatus{}, err
	}
	if err := s.canOperate(n); err != nil {
		return PowerStatus{}, err
	}
	// An action whose worker was lost ends here, so the node is not
	// blocked until its next power request.
	if _, err := s.endOrphan(ctx, s.st.Pool, n); err != nil {
		return PowerStatus{}, err
	}
	out := PowerStatus{NodeID: n.ID, RecordedPowerState: n.PowerState, PowerState: providers.PowerUnknown}
	st, err := s.read(ctx, n)
	out.CheckedAt = s.now().UTC()
	switch {
	case err != nil && ctx.Err() != nil:
		return PowerStatus{}, ctx.Err()
	case err != nil:
		out.Error = err.Error()
		s.log.WarnContext(ctx, "could not read a node's power state", slog.String("node_id", n.ID.String()),
			slog.String("organization_id", n.OrganizationID.String()), slog.Any("error", err))
	default:
		out.PowerState, out.ProviderState = st.State, st.Provider
	}
	latest, err := s.q.LatestNodeAction(ctx, s.st.Pool, store.LatestNodeActionParams{OrganizationID: n.OrganizationID, NodeID: n.ID})
	switch {
	case err == nil:
		a := view(latest)
		out.Action = &a
	case !store.IsNoRows(err):
		return PowerStatus{}, fmt.Errorf("latest action of node %s: %w", n.ID, err)
	}
	idle := out.Action == nil || (out.Action.Status != StatusQueued && out.Action.Status != StatusRunning)
	if rec := recorded(out.PowerState); idle && rec != "" {
		if rec != n.PowerState {
			s.log.InfoContext(ctx, "a node's power state changed outside shardform", slog.String("node_id", n.ID.String()),
				slog.String("organization_id", n.OrganizationID.String()), slog.String("was", n.PowerState), slog.String("now", rec))
		}
		// A running machine's addresses too: a start whose address read
		// failed (or a start outside shardform) is caught up here.
		var addr addresses
		if rec == recordedRunning {
			addr = addresses{ipv4: st.IPv4, ipv6: st.IPv6}
		}
		if err := s.st.InTx(ctx, func(tx pgx.Tx) error { return s.record(ctx, tx, n, rec, addr) }); err != nil {
			return PowerStatus{}, err
		}
		out.RecordedPowerState = rec
	}
	return out, nil
}

// recorded is the power state to record for a cloud's reading ("" for a
// transitional or unknown one).
func recorded(state string) string {
	switch state {
	case providers.PowerRunning:
		return recordedRunning
	case providers.PowerStopped:
		return recordedStopped
	}
	return ""
}

// read asks the node's cloud (or, for local nodes, its machine row) for
// its power state.
func (s *Service) read(ctx context.Context, n store.Node) (providers.PowerStatus, error) {
	if n.Provider == localProvider {
		return s.localStatus(ctx, n)
	}
	m, err := s.machine(ctx, n)
	if err != nil {
		return providers.PowerStatus{}, err
	}
	return s.clouds[n.Provider].PowerStatus(ctx, m)
}

func (s *Service) machine(ctx context.Context, n store.Node) (providers.Machine, error) {
	sec, err := s.secret(ctx, s.st.Pool, n)
	if err != nil {
		return providers.Machine{}, err
	}
	return providers.Machine{ServerID: n.ServerID, Region: n.Region, Secret: sec}, nil
}
