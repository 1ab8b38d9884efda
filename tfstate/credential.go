package tfstate

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/shardform/shardform/domain"
	"github.com/shardform/shardform/store"
)

// RunPasswordPrefix starts every run credential's password, so a leaked one
// is recognisable (secret scanners, logs).
const RunPasswordPrefix = "shardform_run_"

// runUsernamePrefix starts a run credential's username: "run-<run id>".
const runUsernamePrefix = "run-"

// maxPasswordLength bounds a presented password (a minted one is 57 characters).
const maxPasswordLength = 128

// MintRunCredential makes a credential for runID on stateID, valid for ttl:
// HTTP Basic username "run-<run id>" and a random password starting with
// RunPasswordPrefix, stored as its sha256 only. Expired credentials of the
// state are deleted on the way.
func (s *Service) MintRunCredential(ctx context.Context, stateID StateID, runID uuid.UUID, ttl time.Duration) (username, password string, err error) {
	return s.MintWorkerRunCredential(ctx, stateID, runID, "", ttl)
}

// MintWorkerRunCredential is MintRunCredential for a run of the named
// worker process: the state locks the run takes name it as their holder.
func (s *Service) MintWorkerRunCredential(ctx context.Context, stateID StateID, runID uuid.UUID, worker string, ttl time.Duration) (username, password string, err error) {
	if runID == uuid.Nil {
		return "", "", domain.Invalid("run_id", "is required")
	}
	if ttl <= 0 {
		return "", "", domain.Invalid("ttl", "must be positive")
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return "", "", fmt.Errorf("mint state credential: %w", err)
	}
	password = RunPasswordPrefix + base64.RawURLEncoding.EncodeToString(secret)
	hash := sha256.Sum256([]byte(password))
	now := s.now()
	err = s.st.InTx(ctx, func(tx pgx.Tx) error {
		q := s.st.Q
		if _, err := q.DeleteExpiredTFRunCredentials(ctx, tx, store.DeleteExpiredTFRunCredentialsParams{StateID: stateID, Now: now}); err != nil {
			return err
		}
		return q.CreateTFRunCredential(ctx, tx, store.CreateTFRunCredentialParams{
			StateID: stateID, RunID: runID, Worker: worker, SecretHash: hash[:], ExpiresAt: now.Add(ttl), Now: now,
		})
	})
	if store.IsForeignKeyViolation(err) {
		return "", "", domain.NotFound("state")
	}
	if err != nil {
		return "", "", fmt.Errorf("mint state credential for run %s: %w", runID, err)
	}
	return runUsernamePrefix + runID.String(), password, nil
}

// AuthenticateRun checks a run credential and returns its grant (read and
// write on its one state). An unknown, malformed or expired credential is
// domain.ErrUnauthenticated.
func (s *Service) AuthenticateRun(ctx context.Context, username, password string) (Grant, error) {
	bad := domain.Unauthenticated("invalid or expired state credential")
	rest, ok := strings.CutPrefix(username, runUsernamePrefix)
	if !ok || !strings.HasPrefix(password, RunPasswordPrefix) || len(password) > maxPasswordLength {
		return Grant{}, bad
	}
	runID, err := domain.ParseID("username", rest)
	if err != nil {
		return Grant{}, bad
	}
	hash := sha256.Sum256([]byte(password))
	row, err := s.st.Q.AuthenticateTFRunCredential(ctx, s.st.Pool, store.AuthenticateTFRunCredentialParams{SecretHash: hash[:], RunID: runID, Now: s.now()})
	if store.IsNoRows(err) {
		return Grant{}, bad
	}
	if err != nil {
		return Grant{}, fmt.Errorf("authenticate state credential: %w", err)
	}
	g := Grant{StateID: row.StateID, OrganizationID: row.OrganizationID, ProvisionID: row.ProvisionID, RunID: row.RunID, Worker: row.Worker, Write: true}
	if row.Name != nil {
		g.Name = *row.Name
	}
	return g, nil
}

// RevokeRunCredentials deletes runID's credentials (the run ended) and
// returns how many.
func (s *Service) RevokeRunCredentials(ctx context.Context, runID uuid.UUID) (int64, error) {
	n, err := s.st.Q.DeleteRunTFCredentials(ctx, s.st.Pool, runID)
	if err != nil {
		return 0, fmt.Errorf("revoke state credentials of run %s: %w", runID, err)
	}
	return n, nil
}
