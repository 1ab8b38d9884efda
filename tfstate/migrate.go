package tfstate

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/shardform/shardform/store"
)

// DefaultPGSchema is the schema of the old pg backend's states table.
const DefaultPGSchema = "terraform_state"

// ImportPG stores a state read from the old pg backend (its
// terraform_state.states row of the request's workspace) as version 1 of
// the provision request's state. It does nothing, and returns false, when
// the state has a version already: importing is idempotent, and never
// overwrites what the http backend wrote since.
func (s *Service) ImportPG(ctx context.Context, orgID, provisionID uuid.UUID, data []byte) (imported bool, err error) {
	meta, err := ParseStateMeta(data)
	if err != nil {
		return false, fmt.Errorf("import state of provision %s: %w", provisionID, err)
	}
	sum := Checksum(data)
	now := s.now()
	err = s.st.InTx(ctx, func(tx pgx.Tx) error {
		q := s.st.Q
		g := Grant{OrganizationID: orgID, ProvisionID: uuid.NullUUID{UUID: provisionID, Valid: true}}
		id, err := s.lockState(ctx, tx, g, true)
		if err != nil {
			return err
		}
		n, err := q.CountTFStateVersions(ctx, tx, id)
		if err != nil {
			return err
		}
		if n > 0 {
			return nil
		}
		const version = 1
		sealed, err := s.sealer.Seal(data, sealContext(id, version))
		if err != nil {
			return err
		}
		err = q.InsertTFStateVersion(ctx, tx, store.InsertTFStateVersionParams{
			StateID: id, Version: version, Serial: meta.Serial, Lineage: meta.Lineage, Checksum: sum,
			Size: int64(len(data)), Sealed: sealed, Now: now,
		})
		if err != nil {
			return err
		}
		imported = true
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("import state of provision %s: %w", provisionID, err)
	}
	return imported, nil
}

// MigrateFromPG imports the old pg backend's states into versioned, sealed
// rows: every workspace of schema.states (schema "" is DefaultPGSchema)
// named after a provision request's id, whose state has no version yet,
// becomes version 1 of that request's state (ImportPG). Once the request's
// state is sealed and verified (its latest version opens and matches its
// checksum, and is the imported state itself or one the http backend wrote
// since), the plain-text row is deleted: no state stays in plain text.
// Workspaces named otherwise are left alone, and empty ones are deleted.
// Without the schema it does nothing. It may run at every start and from
// many processes at once (the processes run it under the migration lock):
// a state is imported once. It returns how many states it imported; a
// state that cannot be imported (not a state file) does not stop the
// others, keeps its row, and is reported in the joined error.
func (s *Service) MigrateFromPG(ctx context.Context, schema string) (int, error) {
	if schema == "" {
		schema = DefaultPGSchema
	}
	table := pgx.Identifier{schema, "states"}.Sanitize()
	var exists bool
	if err := s.st.Pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", table).Scan(&exists); err != nil {
		return 0, fmt.Errorf("migrate pg states: %w", err)
	}
	if !exists {
		return 0, nil
	}
	// The old table is not in sqlc's schema (Terraform's pg backend made it),
	// so these two statements are written here. First the candidates, without
	// their data; then each state's data on its own, so a large table is
	// never held in memory at once.
	rows, err := s.st.Pool.Query(ctx, `
SELECT o.id, p.organization_id, p.id
FROM `+table+` o
JOIN provision_requests p ON p.id::text = o.name
ORDER BY o.id`)
	if err != nil {
		return 0, fmt.Errorf("migrate pg states: %w", err)
	}
	type candidate struct {
		rowID            int64
		org, provisionID uuid.UUID
	}
	cands, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (candidate, error) {
		var c candidate
		return c, r.Scan(&c.rowID, &c.org, &c.provisionID)
	})
	if err != nil {
		return 0, fmt.Errorf("migrate pg states: %w", err)
	}
	imported := 0
	var errs []error
	for _, c := range cands {
		var data string
		if err := s.st.Pool.QueryRow(ctx, "SELECT coalesce(data, '') FROM "+table+" WHERE id = $1", c.rowID).Scan(&data); err != nil {
			if errors.Is(err, pgx.ErrNoRows) {
				continue
			}
			return imported, fmt.Errorf("migrate pg states: %w", err)
		}
		ok := false
		if data != "" {
			ok, err = s.ImportPG(ctx, c.org, c.provisionID, []byte(data))
			if err != nil {
				if ctx.Err() != nil {
					return imported, err
				}
				errs = append(errs, err)
				continue
			}
		}
		if ok {
			imported++
		}
		if err := s.dropPlain(ctx, table, c.rowID, c.org, c.provisionID, []byte(data), ok); err != nil {
			if ctx.Err() != nil {
				return imported, err
			}
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return imported, fmt.Errorf("migrate pg states: %w", errors.Join(errs...))
	}
	return imported, nil
}

// dropPlain deletes row rowID of the old table (a request's state in plain
// text, data) once the request's state is sealed and verified: its latest
// version opens and its content matches its checksum, and it is the state
// just imported (justImported: the same checksum) or any version, when the
// state was imported before or written by the http backend since. An
// empty row has nothing to keep.
func (s *Service) dropPlain(ctx context.Context, table string, rowID int64, orgID, provisionID uuid.UUID, data []byte, justImported bool) error {
	if len(data) > 0 {
		id, err := s.existingProvisionState(ctx, orgID, provisionID)
		if err != nil {
			return fmt.Errorf("verify state of provision %s: %w", provisionID, err)
		}
		if id == uuid.Nil {
			return fmt.Errorf("verify state of provision %s: no sealed state: the plain-text row is kept", provisionID)
		}
		v, err := s.st.Q.LatestTFStateVersion(ctx, s.st.Pool, store.LatestTFStateVersionParams{OrganizationID: orgID, StateID: id})
		if err != nil {
			return fmt.Errorf("verify state of provision %s: %w (the plain-text row is kept)", provisionID, err)
		}
		opened, err := s.sealer.Open(v.Sealed, sealContext(id, v.Version))
		if err != nil {
			return fmt.Errorf("verify state of provision %s: version %d does not open: %w (the plain-text row is kept)", provisionID, v.Version, err)
		}
		if Checksum(opened) != v.Checksum || (justImported && v.Checksum != Checksum(data)) {
			return fmt.Errorf("verify state of provision %s: version %d does not match its checksum (the plain-text row is kept)", provisionID, v.Version)
		}
	}
	if _, err := s.st.Pool.Exec(ctx, "DELETE FROM "+table+" WHERE id = $1", rowID); err != nil {
		return fmt.Errorf("delete the plain-text state of provision %s: %w", provisionID, err)
	}
	return nil
}
