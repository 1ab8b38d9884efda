-- +goose Up
-- The instances API (package placement): instance names are unique per
-- organization, checked by the service under an advisory lock on the name
-- (rows written before the API, or directly with SQL, may repeat a name, so
-- this is not a unique index); this index answers that check and the list's
-- name order without reading the organization's other instances.
CREATE INDEX instances_org_name_idx ON instances (organization_id, name);

-- The players an instance was sized for when placed from a template (0:
-- sized by hand).
ALTER TABLE instances ADD COLUMN players integer NOT NULL DEFAULT 0 CHECK (players >= 0);

-- +goose Down
ALTER TABLE instances DROP COLUMN players;
DROP INDEX instances_org_name_idx;
