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
// becomes version 1 of that request's state (ImportPG). Workspaces named
// otherwise, and empty ones, are left alone; the old table is not changed.
// Without the schema it does nothing. It may run at every start and from
// many processes at once: a state is imported once. It returns how many
// states it imported; a state that cannot be imported (not a state file)
// does not stop the others and is reported in the joined error.
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
WHERE coalesce(o.data, '') <> ''
  AND NOT EXISTS (SELECT 1 FROM tf_states t JOIN tf_state_versions v ON v.state_id = t.id WHERE t.provision_id = p.id)
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
		ok, err := s.ImportPG(ctx, c.org, c.provisionID, []byte(data))
		if err != nil {
			if ctx.Err() != nil {
				return imported, err
			}
			errs = append(errs, err)
			continue
		}
		if ok {
			imported++
		}
	}
	if len(errs) > 0 {
		return imported, fmt.Errorf("migrate pg states: %w", errors.Join(errs...))
	}
	return imported, nil
}
