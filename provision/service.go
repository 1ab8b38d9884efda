// Package provision is the provisioning pipeline's domain: provision
// requests and their lifecycle (pending → planning → planned → applying →
// applied; destroying → destroyed; failed), the Terraform runs behind each
// step, and node registration. The API calls the request side; the worker
// package's River workers call Run*.
package provision

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/shardform/shardform/domain"
	"github.com/shardform/shardform/liveness"
	"github.com/shardform/shardform/providers"
	"github.com/shardform/shardform/seal"
	"github.com/shardform/shardform/store"
	"github.com/shardform/shardform/terraform"
	"github.com/shardform/shardform/tfstate"
)

// Statuses of a provision request.
const (
	StatusPending    = "pending"
	StatusPlanning   = "planning"
	StatusPlanned    = "planned"
	StatusApplying   = "applying"
	StatusApplied    = "applied"
	StatusDestroying = "destroying"
	StatusDestroyed  = "destroyed"
	StatusFailed     = "failed"
)

// Queue inserts jobs inside the caller's transaction (river.Client does).
type Queue interface {
	InsertTx(ctx context.Context, tx pgx.Tx, args river.JobArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error)
	JobCancelTx(ctx context.Context, tx pgx.Tx, jobID int64) (*rivertype.JobRow, error)
}

// Service runs the pipeline.
type Service struct {
	st      *store.Store
	q       *store.Queries
	sealer  *seal.Sealer
	drivers *providers.Registry
	runner  *terraform.Runner // nil in API-only processes
	// noTerraform is why a worker process has no runner: its jobs fail
	// with it instead of waiting for a Terraform that is not there.
	noTerraform error
	queue       Queue
	now         func() time.Time
	log         *slog.Logger
	state       *tfstate.Service // the Terraform state store (workers)
	stateBase   string           // where this process serves it to its runs
	runTTL      time.Duration    // how long a run's state credential is valid
	feed        *logFeed         // the log followers of this process
	live        *runLiveness     // the liveness session of this process's runs
	worker      string           // this process's name on its runs and state locks
	dns         DNS              // auto-DNS of registered nodes (nil: none)
	joins       JoinTokens       // nil: provisioned nodes do not join by themselves
	joinURL     string           // the API's address the nodes reach
	power       Power            // reads a node's power state after an apply (nil: not read)
	// gone: the runs this process's rescuer found without their holder,
	// and since when (see holderGoneGrace).
	goneMu sync.Mutex
	gone   map[uuid.UUID]time.Time
	// renderOnDemand: a plan is rendered for review only when GET
	// /v1/runs/{id}/plan first asks (SHARDFORM_PLAN_RENDER=on-demand);
	// by default a render job is queued as the plan succeeds.
	renderOnDemand bool
}

// New builds the service. runner may be nil where no job runs; log (nil:
// discard) receives what the service cannot return to a caller.
func New(st *store.Store, sealer *seal.Sealer, drivers *providers.Registry, runner *terraform.Runner, now func() time.Time, log *slog.Logger) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Service{st: st, q: st.Q, sealer: sealer, drivers: drivers, runner: runner, now: now, log: log}
	s.feed = newLogFeed(log, func() *pgx.ConnConfig { return s.sessionConfig(feedApplicationName) })
	s.live = liveness.New(func() *pgx.ConnConfig { return s.sessionConfig(livenessApplicationName) }, log)
	s.worker = defaultWorkerName()
	s.gone = map[uuid.UUID]time.Time{}
	return s
}

// defaultWorkerName names this process on its runs: host and process id.
func defaultWorkerName() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "worker"
	}
	return fmt.Sprintf("%s:%d", host, os.Getpid())
}

// UseWorkerName names this process on its runs and state locks
// (SHARDFORM_WORKER_NAME; default host:pid).
func (s *Service) UseWorkerName(name string) {
	if name != "" {
		s.worker = name
	}
}

// UseState gives the worker its Terraform state store and the base URL its
// runs reach it at (tfstate.ServeLoopback); a run's state credential is
// valid for runTTL (the longest a run may take).
func (s *Service) UseState(state *tfstate.Service, base string, runTTL time.Duration) {
	s.state, s.stateBase, s.runTTL = state, base, runTTL
}

// WithoutTerraform makes every Terraform job of this worker process fail
// with reason (the binary was not found at start).
func (s *Service) WithoutTerraform(reason error) { s.noTerraform = reason }

// Plan review rendering modes (SHARDFORM_PLAN_RENDER).
const (
	// PlanRenderEager queues a plan's render job (show -json, masked) in
	// the transaction that records the plan's success, at
	// PriorityBackground: the run's changes carry masked values soon after,
	// and GET /v1/runs/{id}/plan answers at once.
	PlanRenderEager = "eager"
	// PlanRenderOnDemand renders a plan when GET /v1/runs/{id}/plan first
	// asks for it (and waits for the render).
	PlanRenderOnDemand = "on-demand"
)

// UsePlanRender sets when plans are rendered for review: PlanRenderEager
// (the default) or PlanRenderOnDemand.
func (s *Service) UsePlanRender(mode string) { s.renderOnDemand = mode == PlanRenderOnDemand }

// UseQueue sets the job queue (the River client, built after its workers).
func (s *Service) UseQueue(q Queue) { s.queue = q }

// Request is a provision request as the API shows it.
type Request struct {
	ID           uuid.UUID              `json:"id"`
	Provider     string                 `json:"provider"`
	Region       string                 `json:"region"`
	InstanceType string                 `json:"instance_type"`
	Name         string                 `json:"name"`
	Image        string                 `json:"image"`
	SSHKeys      []string               `json:"ssh_keys"`
	Labels       map[string]string      `json:"labels"`
	Status       string                 `json:"status"`
	Error        string                 `json:"error"`
	PlanSummary  *terraform.PlanSummary `json:"plan_summary"`
	NodeID       *uuid.UUID             `json:"node_id"`
	CredentialID *uuid.UUID             `json:"credential_id"`
	CreatedAt    time.Time              `json:"created_at"`
	UpdatedAt    time.Time              `json:"updated_at"`
	// PlanRunID is the run whose saved plan an apply would apply.
	PlanRunID *uuid.UUID `json:"plan_run_id"`
	// Run is the run a plan, apply, destroy, refresh or cancel call queued
	// or cancelled (only in those answers).
	Run *Run `json:"run,omitempty"`
	// Drift is the last drift check's verdict (GET of one request only;
	// absent before the first refresh run).
	Drift *DriftCheck `json:"drift,omitempty"`
}

// DriftCheck is the outcome of a request's last refresh run.
type DriftCheck struct {
	Drifted   bool       `json:"drifted"`
	RunID     uuid.UUID  `json:"run_id"`
	CheckedAt *time.Time `json:"checked_at"`
}

// view is a stored request as the API shows it. Stored labels or a plan
// summary that do not decode (a row written by hand or by another version)
// are shown empty and logged: the request stays visible and can still be
// planned again or destroyed.
func (s *Service) view(ctx context.Context, r store.ProvisionRequest) Request {
	out := Request{ID: r.ID, Provider: r.Provider, Region: r.Region, InstanceType: r.InstanceType, Name: r.Name, Image: r.Image,
		SSHKeys: r.SshKeys, Labels: map[string]string{}, Status: r.Status, Error: r.Error, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
	if err := json.Unmarshal(r.Labels, &out.Labels); err != nil {
		out.Labels = map[string]string{}
		s.log.ErrorContext(ctx, "provision request has unreadable labels: shown without them",
			slog.String("provision_id", r.ID.String()), slog.String("organization_id", r.OrganizationID.String()), slog.Any("error", err))
	}
	if len(r.PlanSummary) > 0 {
		var sum terraform.PlanSummary
		if err := json.Unmarshal(r.PlanSummary, &sum); err != nil {
			s.log.ErrorContext(ctx, "provision request has an unreadable plan summary: shown without it",
				slog.String("provision_id", r.ID.String()), slog.String("organization_id", r.OrganizationID.String()), slog.Any("error", err))
		} else {
			out.PlanSummary = &sum
		}
	}
	if r.NodeID.Valid {
		id := r.NodeID.UUID
		out.NodeID = &id
	}
	if r.CredentialID.Valid {
		id := r.CredentialID.UUID
		out.CredentialID = &id
	}
	if r.PlanRunID.Valid {
		id := r.PlanRunID.UUID
		out.PlanRunID = &id
	}
	if out.SSHKeys == nil {
		out.SSHKeys = []string{}
	}
	return out
}

// CreateRequest is the body of POST /v1/provision.
type CreateRequest struct {
	Provider     string            `json:"provider"`
	Region       string            `json:"region"`
	InstanceType string            `json:"instance_type"`
	Name         string            `json:"name"`
	Image        string            `json:"image"`
	SSHKeys      []string          `json:"ssh_keys"`
	Labels       map[string]string `json:"labels"`
	// CredentialID names the cloud credential to run with; without it a
	// driver that needs one takes the organization's default for its
	// provider.
	CredentialID *uuid.UUID `json:"credential_id"`
}

var (
	dnsLabel  = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	sshKeyRE  = regexp.MustCompile(`^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh.com|sk-ecdsa-sha2-nistp256@openssh.com) [A-Za-z0-9+/=]+( [^\n]*)?$`)
	imageName = regexp.MustCompile(`^[a-zA-Z0-9._:/-]{1,128}$`)
)

// validate checks a create request against the driver catalog.
func (s *Service) validate(req CreateRequest) (providers.Driver, error) {
	d, ok := s.drivers.Get(req.Provider)
	if !ok {
		return nil, domain.Invalid("provider", "must be one of: %s", strings.Join(s.drivers.Names(), ", "))
	}
	if !providers.HasRegion(d, req.Region) {
		return nil, domain.Invalid("region", "must be one of %s's regions: %s", d.Name(), providers.RegionNames(d))
	}
	if _, ok := providers.FindInstanceTypeIn(d, req.Region, req.InstanceType); !ok {
		return nil, domain.Invalid("instance_type", "must be one of the instance types %s offers in %s: %s", d.Name(), req.Region, providers.InstanceTypeNamesIn(d, req.Region))
	}
	if !dnsLabel.MatchString(req.Name) {
		return nil, domain.Invalid("name", "must be a DNS label: 1-63 lowercase letters, digits and hyphens, not starting or ending with a hyphen")
	}
	if req.Image != "" && !imageName.MatchString(req.Image) {
		return nil, domain.Invalid("image", "must be 1-128 letters, digits and . _ : / -")
	}
	if len(req.SSHKeys) > 20 {
		return nil, domain.Invalid("ssh_keys", "at most 20 keys")
	}
	for i, k := range req.SSHKeys {
		field := fmt.Sprintf("ssh_keys[%d]", i)
		// One authorized_keys line; its comment may be any text but control characters.
		if err := domain.CheckText(field, strings.TrimSpace(k), domain.MaxPublicKeyLength); err != nil {
			return nil, err
		}
		if !sshKeyRE.MatchString(strings.TrimSpace(k)) {
			return nil, domain.Invalid(field, "must be a public key in authorized_keys form")
		}
	}
	if err := domain.Labels("labels", req.Labels); err != nil {
		return nil, err
	}
	return d, nil
}

// Create records a provision request (status pending). With an idempotency
// key, the same key and body return the first request instead of a new one.
func (s *Service) Create(ctx context.Context, p *domain.Principal, req CreateRequest, idempotencyKey string) (Request, bool, error) {
	if err := need(p, domain.PermProvisionWrite); err != nil {
		return Request{}, false, err
	}
	d, err := s.validate(req)
	if err != nil {
		return Request{}, false, err
	}
	credID, err := s.credential(ctx, p, d, req.CredentialID)
	if err != nil {
		return Request{}, false, err
	}
	if err := domain.CheckText("Idempotency-Key", idempotencyKey, domain.MaxTextLength); err != nil {
		return Request{}, false, err
	}
	if req.SSHKeys == nil {
		req.SSHKeys = []string{}
	}
	if req.Labels == nil {
		req.Labels = map[string]string{}
	}
	labels, _ := json.Marshal(req.Labels)
	hash := requestHash(req)
	var key *string
	if idempotencyKey != "" {
		key = &idempotencyKey
		prev, err := s.q.GetProvisionRequestByIdempotencyKey(ctx, s.st.Pool, store.GetProvisionRequestByIdempotencyKeyParams{OrganizationID: p.OrgID, IdempotencyKey: key})
		if err == nil {
			if string(prev.RequestHash) != string(hash) {
				return Request{}, false, &domain.PublicError{Kind: domain.ErrUnprocessable, Message: "Idempotency-Key was already used with a different request body"}
			}
			return s.view(ctx, prev), false, nil
		}
		if !store.IsNoRows(err) {
			return Request{}, false, fmt.Errorf("create provision: %w", err)
		}
	}
	var row store.ProvisionRequest
	err = s.st.InTx(ctx, func(tx pgx.Tx) error {
		var err error
		row, err = s.q.CreateProvisionRequest(ctx, tx, store.CreateProvisionRequestParams{
			OrganizationID: p.OrgID, CreatedBy: uuid.NullUUID{UUID: p.UserID, Valid: true},
			Provider: req.Provider, Region: req.Region, InstanceType: req.InstanceType, Name: req.Name, Image: req.Image,
			SshKeys: req.SSHKeys, Labels: labels, IdempotencyKey: key, RequestHash: hash, CredentialID: credID,
		})
		if err != nil {
			return err
		}
		// Every node starts with SSH and ping open (its firewall rules).
		return s.q.SeedFirewallRules(ctx, tx, store.SeedFirewallRulesParams{OrganizationID: p.OrgID, ProvisionID: row.ID})
	})
	if store.IsForeignKeyViolation(err) {
		return Request{}, false, domain.NotFound("credential") // deleted meanwhile
	}
	if store.IsUniqueViolation(err) {
		if key != nil {
			// A concurrent request with the same key won the race.
			prev, gerr := s.q.GetProvisionRequestByIdempotencyKey(ctx, s.st.Pool, store.GetProvisionRequestByIdempotencyKeyParams{OrganizationID: p.OrgID, IdempotencyKey: key})
			if gerr == nil && string(prev.RequestHash) == string(hash) {
				return s.view(ctx, prev), false, nil
			}
		}
		return Request{}, false, domain.Conflict("a live provision request named %q already exists in this organization", req.Name)
	}
	if err != nil {
		return Request{}, false, fmt.Errorf("create provision: %w", err)
	}
	return s.view(ctx, row), true, nil
}

// credential resolves the credential a request runs with: the named one
// (of the organization, for the driver's provider) or the provider's
// default. Drivers that need none take none.
func (s *Service) credential(ctx context.Context, p *domain.Principal, d providers.Driver, id *uuid.UUID) (uuid.NullUUID, error) {
	cd, needs := d.(providers.Credentialed)
	if !needs {
		if id != nil {
			return uuid.NullUUID{}, domain.Invalid("credential_id", "the %s driver takes no credential", d.Name())
		}
		return uuid.NullUUID{}, nil
	}
	provider := cd.CredentialProvider()
	var row store.Credential
	var err error
	if id != nil {
		row, err = s.q.GetCredential(ctx, s.st.Pool, store.GetCredentialParams{OrganizationID: p.OrgID, ID: *id})
		if store.IsNoRows(err) {
			return uuid.NullUUID{}, domain.NotFound("credential")
		}
	} else {
		row, err = s.q.GetDefaultCredential(ctx, s.st.Pool, store.GetDefaultCredentialParams{OrganizationID: p.OrgID, Provider: provider})
		if store.IsNoRows(err) {
			return uuid.NullUUID{}, domain.Invalid("credential_id", "is required: this organization has no default %s credential (create one with POST /v1/credentials)", provider)
		}
	}
	if err != nil {
		return uuid.NullUUID{}, fmt.Errorf("provision credential: %w", err)
	}
	if row.Provider != provider {
		return uuid.NullUUID{}, domain.Invalid("credential_id", "names a %s credential; the %s driver needs a %s credential", row.Provider, d.Name(), provider)
	}
	return uuid.NullUUID{UUID: row.ID, Valid: true}, nil
}

func requestHash(req CreateRequest) []byte {
	b, _ := json.Marshal(req) // encoding/json sorts map keys: the hash is stable
	h := sha256.Sum256(b)
	return h[:]
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

// Get returns one request of the caller's organization.
func (s *Service) Get(ctx context.Context, p *domain.Principal, id uuid.UUID) (Request, error) {
	if err := need(p, domain.PermProvisionRead); err != nil {
		return Request{}, err
	}
	r, err := s.q.GetProvisionRequest(ctx, s.st.Pool, store.GetProvisionRequestParams{OrganizationID: p.OrgID, ID: id})
	if store.IsNoRows(err) {
		return Request{}, domain.NotFound("provision request")
	}
	if err != nil {
		return Request{}, fmt.Errorf("get provision %s: %w", id, err)
	}
	out := s.view(ctx, r)
	last, err := s.q.LatestRefreshRun(ctx, s.st.Pool, store.LatestRefreshRunParams{OrganizationID: p.OrgID, ProvisionID: id})
	switch {
	case err == nil && last.Drifted.Valid:
		out.Drift = &DriftCheck{Drifted: last.Drifted.Bool, RunID: last.ID, CheckedAt: last.FinishedAt}
	case err != nil && !store.IsNoRows(err):
		return Request{}, fmt.Errorf("get provision %s: last refresh: %w", id, err)
	}
	return out, nil
}

// Filter narrows a list.
type Filter struct {
	Status   string
	Provider string
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// List lists the organization's requests, newest first.
func (s *Service) List(ctx context.Context, p *domain.Principal, f Filter, page domain.Page) ([]Request, int64, error) {
	if err := need(p, domain.PermProvisionRead); err != nil {
		return nil, 0, err
	}
	if f.Status != "" && !validStatus(f.Status) {
		return nil, 0, domain.Invalid("status", "must be one of pending, planning, planned, applying, applied, destroying, destroyed, failed")
	}
	total, err := s.q.CountProvisionRequests(ctx, s.st.Pool, store.CountProvisionRequestsParams{OrganizationID: p.OrgID, Status: optional(f.Status), Provider: optional(f.Provider)})
	if err != nil {
		return nil, 0, fmt.Errorf("count provisions: %w", err)
	}
	rows, err := s.q.ListProvisionRequests(ctx, s.st.Pool, store.ListProvisionRequestsParams{OrganizationID: p.OrgID, Status: optional(f.Status), Provider: optional(f.Provider), Lim: page.Limit, Off: page.Offset()})
	if err != nil {
		return nil, 0, fmt.Errorf("list provisions: %w", err)
	}
	out := make([]Request, len(rows))
	for i, r := range rows {
		out[i] = s.view(ctx, r)
	}
	return out, total, nil
}

func validStatus(s string) bool {
	switch s {
	case StatusPending, StatusPlanning, StatusPlanned, StatusApplying, StatusApplied, StatusDestroying, StatusDestroyed, StatusFailed:
		return true
	}
	return false
}

// transition moves a request to status `to` from one of `from` and queues
// a run of kind with its job, in one transaction: the request is durable
// and queued at once. An empty `to` leaves the status as it is (a refresh).
func (s *Service) transition(ctx context.Context, p *domain.Principal, id uuid.UUID, to string, from []string, kind string,
	checks ...func(context.Context, pgx.Tx, store.ProvisionRequest) error) (Request, error) {
	if err := need(p, domain.PermProvisionWrite); err != nil {
		return Request{}, err
	}
	if s.queue == nil {
		return Request{}, fmt.Errorf("provision %s: no job queue configured", id)
	}
	var out Request
	err := s.st.InTx(ctx, func(tx pgx.Tx) error {
		r, err := s.q.GetProvisionRequestForUpdate(ctx, tx, store.GetProvisionRequestForUpdateParams{OrganizationID: p.OrgID, ID: id})
		if store.IsNoRows(err) {
			return domain.NotFound("provision request")
		}
		if err != nil {
			return fmt.Errorf("provision %s: %w", id, err)
		}
		if !slices.Contains(from, r.Status) {
			if to == "" {
				return domain.Conflict("provision request is %s: a %s needs it %s", r.Status, kind, strings.Join(from, " or "))
			}
			return domain.Conflict("provision request is %s: cannot go to %s from there", r.Status, to)
		}
		for _, check := range checks {
			if err := check(ctx, tx, r); err != nil {
				return err
			}
		}
		run, err := s.newRunTx(ctx, tx, p, r, kind)
		if err != nil {
			return err
		}
		if to != "" {
			if err := s.q.SetProvisionStatus(ctx, tx, store.SetProvisionStatusParams{OrganizationID: p.OrgID, ID: id, Status: to, Error: ""}); err != nil {
				return fmt.Errorf("provision %s: %w", id, err)
			}
			r.Status, r.Error = to, ""
		}
		out = s.view(ctx, r)
		v := s.runView(ctx, run)
		out.Run = &v
		return nil
	})
	return out, err
}

// Cancel cancels the request's current run (see CancelRun): a queued run
// at once, the request going back to where it was (pending or planned
// before a plan, planned before an apply, applied before a destroy); a
// running one is interrupted (Terraform stops gracefully and releases the
// state lock; force: killed at once) and its worker records the outcome:
// back to pending or planned after a plan, failed after an apply or a
// destroy, whose resources may be partly made or gone (the error says so).
func (s *Service) Cancel(ctx context.Context, p *domain.Principal, id uuid.UUID, force bool) (Request, error) {
	if err := need(p, domain.PermProvisionWrite); err != nil {
		return Request{}, err
	}
	if s.queue == nil {
		return Request{}, fmt.Errorf("provision %s: no job queue configured", id)
	}
	var out Request
	err := s.st.InTx(ctx, func(tx pgx.Tx) error {
		r, err := s.q.GetProvisionRequestForUpdate(ctx, tx, store.GetProvisionRequestForUpdateParams{OrganizationID: p.OrgID, ID: id})
		if store.IsNoRows(err) {
			return domain.NotFound("provision request")
		}
		if err != nil {
			return fmt.Errorf("provision %s: %w", id, err)
		}
		run, err := s.q.ActiveRunOf(ctx, tx, store.ActiveRunOfParams{OrganizationID: p.OrgID, ProvisionID: id})
		if store.IsNoRows(err) {
			return domain.Conflict("nothing to cancel: the provision request is %s and has no run queued or running", r.Status)
		}
		if err != nil {
			return fmt.Errorf("provision %s: %w", id, err)
		}
		if run, err = s.q.GetRunForUpdate(ctx, tx, store.GetRunForUpdateParams{OrganizationID: p.OrgID, ID: run.ID}); err != nil {
			return fmt.Errorf("provision %s: %w", id, err)
		}
		if run, err = s.cancelRunTx(ctx, tx, &r, run, force); err != nil {
			return err
		}
		out = s.view(ctx, r)
		v := s.runView(ctx, run)
		out.Run = &v
		return nil
	})
	return out, err
}

// statusBefore is where a request whose run did not start goes back to.
func statusBefore(r store.ProvisionRequest) string {
	switch r.Status {
	case StatusApplying:
		return StatusPlanned
	case StatusDestroying:
		return StatusApplied
	case StatusApplied:
		return StatusApplied // a refresh
	}
	switch {
	case len(r.PlanFile) > 0:
		return StatusPlanned
	case r.NodeID.Valid:
		return StatusApplied // a new plan of an applied request (a resize, a firewall change)
	}
	return StatusPending
}

// Plan queues a plan (from pending, planned, applied or failed: an applied
// request is planned again to converge on its configuration).
func (s *Service) Plan(ctx context.Context, p *domain.Principal, id uuid.UUID) (Request, error) {
	return s.transition(ctx, p, id, StatusPlanning, []string{StatusPending, StatusPlanned, StatusApplied, StatusFailed}, RunPlan)
}

// Apply queues the apply of the saved plan (only from planned). An apply
// that would shrink the node below what its instances reserve is 409
// naming each short resource.
func (s *Service) Apply(ctx context.Context, p *domain.Principal, id uuid.UUID) (Request, error) {
	return s.transition(ctx, p, id, StatusApplying, []string{StatusPlanned}, RunApply, s.applyFit)
}

// Destroy queues the destruction of everything the request created.
// A node that still holds instances is not destroyed unless force (they
// are deleted with it); the node is cordoned while it is destroyed.
func (s *Service) Destroy(ctx context.Context, p *domain.Principal, id uuid.UUID, force bool) (Request, error) {
	return s.transition(ctx, p, id, StatusDestroying, []string{StatusPending, StatusPlanned, StatusApplied, StatusFailed}, RunDestroy, s.destroyCheck(force))
}

// Refresh queues a drift check of an applied request (plan -refresh-only):
// the request stays applied; the run records whether the real
// infrastructure drifted from the state, and what changed.
func (s *Service) Refresh(ctx context.Context, p *domain.Principal, id uuid.UUID) (Request, error) {
	return s.transition(ctx, p, id, "", []string{StatusApplied}, RunRefresh)
}
