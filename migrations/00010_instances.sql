-- +goose Up
-- The instances API (package placement): instance names are unique per
-- organization (a duplicate is 409); the index also serves the list's name
-- order.
CREATE UNIQUE INDEX instances_org_name_key ON instances (organization_id, name);

-- The players an instance was sized for when placed from a template (0:
-- sized by hand).
ALTER TABLE instances ADD COLUMN players integer NOT NULL DEFAULT 0 CHECK (players >= 0);

-- +goose Down
ALTER TABLE instances DROP COLUMN players;
DROP INDEX instances_org_name_key;
