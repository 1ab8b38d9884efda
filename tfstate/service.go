// Package tfstate is shardform's Terraform state: Terraform's http backend
// served by shardform itself, as GitLab and Gitea serve managed state.
//
// A state belongs to an organization and is either a provision request's
// (created on first use) or a custom one a user's own Terraform writes under
// a name. Every write is a new version (serial, lineage, checksum, run id),
// sealed under the master key and bound to its state and version; a write
// that does not continue the stored history (another lineage, an older
// serial) is refused. A lock is a row holding Terraform's LockInfo with a
// lease its run renews; an expired lock is taken over. A run reaches its
// state with a credential of its own (HTTP Basic, stored hashed) minted by
// the worker for the run's duration.
//
// Service holds the logic; Handler serves it over net/http so a worker can
// serve it on loopback and the API can mount it.
package tfstate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/shardform/shardform/domain"
	"github.com/shardform/shardform/seal"
	"github.com/shardform/shardform/store"
)

// StateID identifies a state (a tf_states row).
type StateID = uuid.UUID

// Defaults of Options.
const (
	DefaultKeepVersions  = 50
	DefaultLockLease     = 2 * time.Minute
	DefaultUserLockLease = 24 * time.Hour
)

// MaxStateSize bounds one state file (the update's body).
const MaxStateSize = 64 << 20

// Options tune the service; zero values take the defaults.
type Options struct {
	// KeepVersions is how many versions of each state are kept (default
	// 50); older ones are deleted by the write that makes a new one.
	KeepVersions int
	// LockLease is how long a run's lock lasts unless renewed (Renew),
	// default 2 minutes. An expired lock is taken over by the next Lock.
	LockLease time.Duration
	// UserLockLease is the lease of a lock taken without a run (a user's
	// own Terraform, which renews nothing): default 24 hours.
	UserLockLease time.Duration
	// Logger receives the HTTP handler's internal errors (default: discarded).
	Logger *slog.Logger
}

// Service stores, versions and locks Terraform state.
type Service struct {
	st     *store.Store
	sealer *seal.Sealer
	now    func() time.Time
	opts   Options
}

// New returns a Service. now is the clock (time.Now in production).
func New(st *store.Store, sealer *seal.Sealer, now func() time.Time, opts Options) *Service {
	if opts.KeepVersions <= 0 {
		opts.KeepVersions = DefaultKeepVersions
	}
	if opts.LockLease <= 0 {
		opts.LockLease = DefaultLockLease
	}
	if opts.UserLockLease <= 0 {
		opts.UserLockLease = DefaultUserLockLease
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if now == nil {
		now = time.Now
	}
	return &Service{st: st, sealer: sealer, now: now, opts: opts}
}

// Grant is what a caller may do with one state. Grants come from
// AuthenticateRun (a run's credential: read and write), ProvisionGrant (a
// user allowed to read a provision request) or CustomGrant.
type Grant struct {
	// StateID is the state; uuid.Nil when the state does not exist yet
	// (ProvisionID or Name then say which it will be).
	StateID        StateID
	OrganizationID uuid.UUID
	// ProvisionID is set for a provision request's state.
	ProvisionID uuid.NullUUID
	// Name is set for a custom state.
	Name string
	// RunID is the run holding the credential; uuid.Nil for a user.
	RunID uuid.UUID
	// Worker is the worker process of the run ("" for a user).
	Worker string
	// Write allows Write, Lock and Unlock.
	Write bool
}

// Version describes one stored version of a state.
type Version struct {
	Version   int           `json:"version"`
	Serial    int64         `json:"serial"`
	Lineage   string        `json:"lineage"`
	Checksum  string        `json:"checksum"`
	RunID     uuid.NullUUID `json:"run_id"`
	Size      int64         `json:"size"`
	CreatedAt time.Time     `json:"created_at"`
}

// sealContext binds a sealed version to its state and number: a value
// copied to another row does not open.
func sealContext(state StateID, version int32) string {
	return fmt.Sprintf("tfstate:%s:%d", state, version)
}

// Checksum is the hex sha256 of a state file, as versions record it.
func Checksum(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// ProvisionState returns the state of a provision request of orgID,
// creating it on first use. A request of another organization is
// domain.ErrNotFound.
func (s *Service) ProvisionState(ctx context.Context, orgID, provisionID uuid.UUID) (StateID, error) {
	return s.provisionState(ctx, s.st.Pool, orgID, provisionID)
}

func (s *Service) provisionState(ctx context.Context, db store.DBTX, orgID, provisionID uuid.UUID) (StateID, error) {
	q := s.st.Q
	if err := q.EnsureProvisionTFState(ctx, db, store.EnsureProvisionTFStateParams{Now: s.now(), OrganizationID: orgID, ProvisionID: provisionID}); err != nil {
		return uuid.Nil, fmt.Errorf("create state of provision %s: %w", provisionID, err)
	}
	row, err := q.GetProvisionTFState(ctx, db, store.GetProvisionTFStateParams{OrganizationID: orgID, ProvisionID: uuid.NullUUID{UUID: provisionID, Valid: true}})
	if store.IsNoRows(err) {
		return uuid.Nil, domain.NotFound("provision request")
	}
	if err != nil {
		return uuid.Nil, fmt.Errorf("get state of provision %s: %w", provisionID, err)
	}
	return row.ID, nil
}

// ProvisionGrant is a read-only grant on a provision request's state, for
// a user allowed to read the request (provision:read). A request of another
// organization is domain.ErrNotFound; a request without state yet gives a
// grant whose Read finds nothing.
func (s *Service) ProvisionGrant(ctx context.Context, orgID, provisionID uuid.UUID) (Grant, error) {
	g := Grant{OrganizationID: orgID, ProvisionID: uuid.NullUUID{UUID: provisionID, Valid: true}}
	id, err := s.existingProvisionState(ctx, orgID, provisionID)
	if err != nil {
		return Grant{}, err
	}
	g.StateID = id
	return g, nil
}

// existingProvisionState returns the request's state, uuid.Nil when it has
// none yet, domain.ErrNotFound when the request is not orgID's.
func (s *Service) existingProvisionState(ctx context.Context, orgID, provisionID uuid.UUID) (StateID, error) {
	ok, err := s.st.Q.TFStateProvisionExists(ctx, s.st.Pool, store.TFStateProvisionExistsParams{OrganizationID: orgID, ProvisionID: provisionID})
	if err != nil {
		return uuid.Nil, fmt.Errorf("look up provision %s: %w", provisionID, err)
	}
	if !ok {
		return uuid.Nil, domain.NotFound("provision request")
	}
	row, err := s.st.Q.GetProvisionTFState(ctx, s.st.Pool, store.GetProvisionTFStateParams{OrganizationID: orgID, ProvisionID: uuid.NullUUID{UUID: provisionID, Valid: true}})
	if store.IsNoRows(err) {
		return uuid.Nil, nil
	}
	if err != nil {
		return uuid.Nil, fmt.Errorf("get state of provision %s: %w", provisionID, err)
	}
	return row.ID, nil
}

// CustomGrant is a grant on the organization's custom state name (a DNS
// label), for a user's own Terraform; write allows Write, Lock and Unlock.
// The state is created by its first lock or write.
func (s *Service) CustomGrant(ctx context.Context, orgID uuid.UUID, name string, write bool) (Grant, error) {
	if err := domain.DNSLabel("name", name); err != nil {
		return Grant{}, err
	}
	g := Grant{OrganizationID: orgID, Name: name, Write: write}
	row, err := s.st.Q.GetCustomTFState(ctx, s.st.Pool, store.GetCustomTFStateParams{OrganizationID: orgID, Name: &name})
	switch {
	case store.IsNoRows(err):
	case err != nil:
		return Grant{}, fmt.Errorf("get custom state %s: %w", name, err)
	default:
		g.StateID = row.ID
	}
	return g, nil
}

// stateOf resolves the grant's state without creating it: uuid.Nil when it
// does not exist yet.
func (s *Service) stateOf(ctx context.Context, db store.DBTX, g Grant) (StateID, error) {
	switch {
	case g.StateID != uuid.Nil:
		return g.StateID, nil
	case g.ProvisionID.Valid:
		row, err := s.st.Q.GetProvisionTFState(ctx, db, store.GetProvisionTFStateParams{OrganizationID: g.OrganizationID, ProvisionID: g.ProvisionID})
		if store.IsNoRows(err) {
			return uuid.Nil, nil
		}
		if err != nil {
			return uuid.Nil, fmt.Errorf("get state of provision %s: %w", g.ProvisionID.UUID, err)
		}
		return row.ID, nil
	case g.Name != "":
		row, err := s.st.Q.GetCustomTFState(ctx, db, store.GetCustomTFStateParams{OrganizationID: g.OrganizationID, Name: &g.Name})
		if store.IsNoRows(err) {
			return uuid.Nil, nil
		}
		if err != nil {
			return uuid.Nil, fmt.Errorf("get custom state %s: %w", g.Name, err)
		}
		return row.ID, nil
	}
	return uuid.Nil, domain.NotFound("state")
}

// ensureState resolves the grant's state, creating it when missing.
func (s *Service) ensureState(ctx context.Context, db store.DBTX, g Grant) (StateID, error) {
	switch {
	case g.StateID != uuid.Nil:
		return g.StateID, nil
	case g.ProvisionID.Valid:
		return s.provisionState(ctx, db, g.OrganizationID, g.ProvisionID.UUID)
	case g.Name != "":
		if err := domain.DNSLabel("name", g.Name); err != nil {
			return uuid.Nil, err
		}
		if err := s.st.Q.EnsureCustomTFState(ctx, db, store.EnsureCustomTFStateParams{OrganizationID: g.OrganizationID, Name: &g.Name, Now: s.now()}); err != nil {
			if store.IsForeignKeyViolation(err) {
				return uuid.Nil, domain.NotFound("organization")
			}
			return uuid.Nil, fmt.Errorf("create custom state %s: %w", g.Name, err)
		}
		return s.stateOf(ctx, db, g)
	}
	return uuid.Nil, domain.NotFound("state")
}

// lockState takes the grant's state row for the transaction (creating the
// state when create is set). It returns uuid.Nil when the state does not
// exist and create is not set.
func (s *Service) lockState(ctx context.Context, tx pgx.Tx, g Grant, create bool) (StateID, error) {
	var id StateID
	var err error
	if create {
		id, err = s.ensureState(ctx, tx, g)
	} else {
		id, err = s.stateOf(ctx, tx, g)
	}
	if err != nil || id == uuid.Nil {
		return id, err
	}
	if _, err := s.st.Q.LockTFState(ctx, tx, store.LockTFStateParams{OrganizationID: g.OrganizationID, ID: id}); err != nil {
		if store.IsNoRows(err) {
			return uuid.Nil, domain.NotFound("state")
		}
		return uuid.Nil, fmt.Errorf("lock state %s: %w", id, err)
	}
	return id, nil
}

// Read returns the latest version of the grant's state, decrypted; found
// is false when nothing was written yet.
func (s *Service) Read(ctx context.Context, g Grant) (data []byte, found bool, err error) {
	id, err := s.stateOf(ctx, s.st.Pool, g)
	if err != nil || id == uuid.Nil {
		return nil, false, err
	}
	v, err := s.st.Q.LatestTFStateVersion(ctx, s.st.Pool, store.LatestTFStateVersionParams{OrganizationID: g.OrganizationID, StateID: id})
	if store.IsNoRows(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read state %s: %w", id, err)
	}
	data, err = s.sealer.Open(v.Sealed, sealContext(id, v.Version))
	if err != nil {
		return nil, false, fmt.Errorf("read state %s version %d: %w", id, v.Version, err)
	}
	return data, true, nil
}

// Write stores data (a Terraform state file) as the grant's next version.
// lockID is the ID of the lock the writer holds ("" for none): while the
// state is locked it must be the lock's. The state must continue the
// stored history: the same lineage and a serial not lower than the latest
// (the same serial is a no-op when the content is the same, a conflict
// otherwise). Versions beyond Options.KeepVersions are deleted.
func (s *Service) Write(ctx context.Context, g Grant, lockID string, data []byte) error {
	if !g.Write {
		return domain.Forbidden("this credential may only read the state")
	}
	if len(data) > MaxStateSize {
		return domain.Invalid("state", "must be at most %d MiB", MaxStateSize>>20)
	}
	meta, err := ParseStateMeta(data)
	if err != nil {
		return err
	}
	sum := Checksum(data)
	now := s.now()
	return s.st.InTx(ctx, func(tx pgx.Tx) error {
		q := s.st.Q
		id, err := s.lockState(ctx, tx, g, true)
		if err != nil {
			return err
		}
		lock, err := q.GetTFStateLock(ctx, tx, id)
		switch {
		case store.IsNoRows(err):
		case err != nil:
			return fmt.Errorf("write state %s: lock: %w", id, err)
		case lock.ExpiresAt.After(now) && lock.LockID != lockID:
			return domain.Conflict("state is locked by %s: the update must carry its lock ID", describeLock(lock.LockID, lock.Info))
		}
		next := int32(1)
		latest, err := q.LatestTFStateVersion(ctx, tx, store.LatestTFStateVersionParams{OrganizationID: g.OrganizationID, StateID: id})
		switch {
		case store.IsNoRows(err):
		case err != nil:
			return fmt.Errorf("write state %s: latest version: %w", id, err)
		case latest.Lineage != meta.Lineage:
			return domain.Conflict("state lineage %q differs from the stored state's %q: this is another state", meta.Lineage, latest.Lineage)
		case meta.Serial < latest.Serial:
			return domain.Conflict("state serial %d is older than the stored state's %d: pull the state and try again", meta.Serial, latest.Serial)
		case meta.Serial == latest.Serial && latest.Checksum == sum:
			return nil // the same state again (a retried request)
		case meta.Serial == latest.Serial:
			return domain.Conflict("state serial %d is stored already with other content: a changed state needs a higher serial", meta.Serial)
		default:
			next = latest.Version + 1
		}
		sealed, err := s.sealer.Seal(data, sealContext(id, next))
		if err != nil {
			return fmt.Errorf("write state %s: %w", id, err)
		}
		err = q.InsertTFStateVersion(ctx, tx, store.InsertTFStateVersionParams{
			StateID: id, Version: next, Serial: meta.Serial, Lineage: meta.Lineage, Checksum: sum,
			RunID: nullUUID(g.RunID), Size: int64(len(data)), Sealed: sealed, Now: now,
		})
		if err != nil {
			return fmt.Errorf("write state %s version %d: %w", id, next, err)
		}
		if keepAfter := next - int32(s.opts.KeepVersions); keepAfter > 0 {
			if _, err := q.PruneTFStateVersions(ctx, tx, store.PruneTFStateVersionsParams{StateID: id, KeepAfter: keepAfter}); err != nil {
				return fmt.Errorf("prune state %s: %w", id, err)
			}
		}
		return nil
	})
}

// Versions lists the stored versions of a provision request's state,
// newest first (at most Options.KeepVersions). A request of another
// organization is domain.ErrNotFound.
func (s *Service) Versions(ctx context.Context, orgID, provisionID uuid.UUID) ([]Version, error) {
	id, err := s.existingProvisionState(ctx, orgID, provisionID)
	if err != nil {
		return nil, err
	}
	out := []Version{}
	if id == uuid.Nil {
		return out, nil
	}
	rows, err := s.st.Q.ListTFStateVersions(ctx, s.st.Pool, store.ListTFStateVersionsParams{OrganizationID: orgID, StateID: id})
	if err != nil {
		return nil, fmt.Errorf("list versions of state %s: %w", id, err)
	}
	for _, r := range rows {
		out = append(out, Version{Version: int(r.Version), Serial: r.Serial, Lineage: r.Lineage, Checksum: r.Checksum, RunID: r.RunID, Size: r.Size, CreatedAt: r.CreatedAt})
	}
	return out, nil
}

// ReadVersion returns version n of a provision request's state, decrypted.
// A missing version, or a request of another organization, is
// domain.ErrNotFound.
func (s *Service) ReadVersion(ctx context.Context, orgID, provisionID uuid.UUID, n int) (Version, []byte, error) {
	id, err := s.existingProvisionState(ctx, orgID, provisionID)
	if err != nil {
		return Version{}, nil, err
	}
	if id == uuid.Nil || n < 1 || n > 1<<31-1 {
		return Version{}, nil, domain.NotFound("state version")
	}
	v, err := s.st.Q.GetTFStateVersion(ctx, s.st.Pool, store.GetTFStateVersionParams{OrganizationID: orgID, StateID: id, Version: int32(n)})
	if store.IsNoRows(err) {
		return Version{}, nil, domain.NotFound("state version")
	}
	if err != nil {
		return Version{}, nil, fmt.Errorf("read state %s version %d: %w", id, n, err)
	}
	data, err := s.sealer.Open(v.Sealed, sealContext(id, v.Version))
	if err != nil {
		return Version{}, nil, fmt.Errorf("read state %s version %d: %w", id, n, err)
	}
	return Version{Version: int(v.Version), Serial: v.Serial, Lineage: v.Lineage, Checksum: v.Checksum, RunID: v.RunID, Size: v.Size, CreatedAt: v.CreatedAt}, data, nil
}

func nullUUID(id uuid.UUID) uuid.NullUUID {
	return uuid.NullUUID{UUID: id, Valid: id != uuid.Nil}
}

// LockLease is how long a run's lock lasts unless renewed: a run renews
// well within it.
func (s *Service) LockLease() time.Duration { return s.opts.LockLease }
