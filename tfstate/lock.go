package tfstate

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/shardform/shardform/domain"
	"github.com/shardform/shardform/store"
)

// MaxLockInfoSize bounds a LockInfo document.
const MaxLockInfoSize = 64 << 10

// LockedError says the state is locked by someone else. Info is the
// holder's LockInfo as it sent it (Terraform's JSON), which the HTTP layer
// answers with (423 for a lock, 409 for an unlock) so Terraform can show
// who holds the lock. errors.Is(err, domain.ErrConflict) holds.
type LockedError struct {
	LockID string
	Info   json.RawMessage
}

func (e *LockedError) Error() string {
	return "state is locked by " + describeLock(e.LockID, e.Info)
}

func (e *LockedError) Unwrap() error { return domain.ErrConflict }

// lockInfo is the part of Terraform's LockInfo the service reads.
type lockInfo struct {
	ID        string `json:"ID"`
	Operation string `json:"Operation"`
	Who       string `json:"Who"`
}

// parseLockInfo checks a LockInfo document and returns it compacted with
// its ID.
func parseLockInfo(info []byte) ([]byte, lockInfo, error) {
	var li lockInfo
	if len(info) > MaxLockInfoSize {
		return nil, li, domain.Invalid("lock_info", "must be at most %d KiB", MaxLockInfoSize>>10)
	}
	trimmed := bytes.TrimSpace(info)
	if len(trimmed) == 0 || trimmed[0] != '{' || json.Unmarshal(trimmed, &li) != nil {
		return nil, li, domain.Invalid("lock_info", "must be Terraform's lock info (a JSON object)")
	}
	if li.ID == "" {
		return nil, li, domain.Invalid("ID", "is required")
	}
	if err := domain.CheckText("ID", li.ID, domain.MaxTextLength); err != nil {
		return nil, li, err
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, trimmed); err != nil {
		return nil, li, domain.Invalid("lock_info", "must be valid JSON")
	}
	return buf.Bytes(), li, nil
}

// describeLock names a lock's holder for an error message: its ID and,
// when the info says, who holds it and for what.
func describeLock(id string, info []byte) string {
	var li lockInfo
	_ = json.Unmarshal(info, &li)
	var b strings.Builder
	fmt.Fprintf(&b, "lock %q", id)
	if li.Who != "" || li.Operation != "" {
		b.WriteString(" (")
		if li.Who != "" {
			fmt.Fprintf(&b, "held by %q", li.Who)
		}
		if li.Operation != "" {
			if li.Who != "" {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "operation %q", li.Operation)
		}
		b.WriteString(")")
	}
	return b.String()
}

// Lock locks the grant's state with Terraform's LockInfo (its "ID" names
// the lock; the whole document is kept). A state locked by another ID whose
// lease has not expired is *LockedError with the holder's info; an expired
// lock is replaced; locking again with the same ID renews the lease (a
// retried request). A run's lock lasts Options.LockLease unless renewed, a
// user's Options.UserLockLease. A custom state is created by its first lock.
func (s *Service) Lock(ctx context.Context, g Grant, info []byte) error {
	if !g.Write {
		return domain.Forbidden("this credential may only read the state")
	}
	compact, li, err := parseLockInfo(info)
	if err != nil {
		return err
	}
	now := s.now()
	lease := s.opts.LockLease
	if g.RunID == uuid.Nil {
		lease = s.opts.UserLockLease
	}
	return s.st.InTx(ctx, func(tx pgx.Tx) error {
		q := s.st.Q
		id, err := s.lockState(ctx, tx, g, true)
		if err != nil {
			return err
		}
		cur, err := q.GetTFStateLock(ctx, tx, id)
		switch {
		case store.IsNoRows(err):
		case err != nil:
			return fmt.Errorf("lock state %s: %w", id, err)
		case cur.LockID != li.ID && cur.ExpiresAt.After(now):
			return &LockedError{LockID: cur.LockID, Info: cur.Info}
		}
		err = q.PutTFStateLock(ctx, tx, store.PutTFStateLockParams{
			StateID: id, LockID: li.ID, Info: compact, RunID: nullUUID(g.RunID), Worker: g.Worker, Now: now, ExpiresAt: now.Add(lease),
		})
		if err != nil {
			return fmt.Errorf("lock state %s: %w", id, err)
		}
		return nil
	})
}

// Unlock releases the grant's lock named by info's "ID". A lock held under
// another ID is *LockedError with the holder's info; no lock is no error.
// An empty info is Terraform's force-unlock (its http backend sends no
// body then) and releases any lock.
func (s *Service) Unlock(ctx context.Context, g Grant, info []byte) error {
	if !g.Write {
		return domain.Forbidden("this credential may only read the state")
	}
	force := len(bytes.TrimSpace(info)) == 0
	var li lockInfo
	if !force {
		var err error
		if _, li, err = parseLockInfo(info); err != nil {
			return err
		}
	}
	return s.st.InTx(ctx, func(tx pgx.Tx) error {
		q := s.st.Q
		id, err := s.lockState(ctx, tx, g, false)
		if err != nil || id == uuid.Nil {
			return err
		}
		cur, err := q.GetTFStateLock(ctx, tx, id)
		switch {
		case store.IsNoRows(err):
			return nil
		case err != nil:
			return fmt.Errorf("unlock state %s: %w", id, err)
		case !force && cur.LockID != li.ID:
			return &LockedError{LockID: cur.LockID, Info: cur.Info}
		}
		if _, err := q.DeleteTFStateLock(ctx, tx, id); err != nil {
			return fmt.Errorf("unlock state %s: %w", id, err)
		}
		return nil
	})
}

// Renew extends every lock runID holds until until (the running job calls
// it well within Options.LockLease). It returns how many locks it renewed.
func (s *Service) Renew(ctx context.Context, runID uuid.UUID, until time.Time) (int64, error) {
	n, err := s.st.Q.RenewRunTFStateLocks(ctx, s.st.Pool, store.RenewRunTFStateLocksParams{ExpiresAt: until, RunID: runID})
	if err != nil {
		return 0, fmt.Errorf("renew state locks of run %s: %w", runID, err)
	}
	return n, nil
}

// ReleaseRun deletes every lock runID holds (a dead worker's run, found by
// the recovery) and returns how many.
func (s *Service) ReleaseRun(ctx context.Context, runID uuid.UUID) (int64, error) {
	n, err := s.st.Q.DeleteRunTFStateLocks(ctx, s.st.Pool, runID)
	if err != nil {
		return 0, fmt.Errorf("release state locks of run %s: %w", runID, err)
	}
	return n, nil
}

// ReleaseProvisionRuns deletes the lock of a provision request's state when
// a run holds it (never a user's own lock): a job that River runs again
// after its worker died calls it, since the dead run cannot unlock.
func (s *Service) ReleaseProvisionRuns(ctx context.Context, orgID, provisionID uuid.UUID) (int64, error) {
	n, err := s.st.Q.DeleteProvisionRunTFStateLocks(ctx, s.st.Pool, store.DeleteProvisionRunTFStateLocksParams{OrganizationID: orgID, ProvisionID: uuid.NullUUID{UUID: provisionID, Valid: true}})
	if err != nil {
		return 0, fmt.Errorf("release run locks of provision %s: %w", provisionID, err)
	}
	return n, nil
}
