-- +goose Up
-- A version per organization's node set, bumped by every statement that
-- inserts, updates or deletes its nodes (including the reservation updates
-- the instances triggers make). suggest-fit keeps each organization's node
-- capacities in memory and re-reads them only when the version moved: a
-- request over 10,000 nodes costs one small query, not 10,000 rows.
-- No foreign key: a row may outlive its organization (the cascade that
-- deletes an organization's nodes bumps it while the organization goes).
CREATE TABLE node_set_versions (
    organization_id uuid PRIMARY KEY,
    version         bigint NOT NULL
);

-- +goose StatementBegin
CREATE FUNCTION bump_node_set_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO node_set_versions (organization_id, version)
        SELECT DISTINCT organization_id, 1 FROM old_rows ORDER BY 1
        ON CONFLICT (organization_id) DO UPDATE SET version = node_set_versions.version + 1;
    ELSE
        INSERT INTO node_set_versions (organization_id, version)
        SELECT DISTINCT organization_id, 1 FROM new_rows ORDER BY 1
        ON CONFLICT (organization_id) DO UPDATE SET version = node_set_versions.version + 1;
    END IF;
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

CREATE TRIGGER nodes_version_insert AFTER INSERT ON nodes
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION bump_node_set_version();
CREATE TRIGGER nodes_version_update AFTER UPDATE ON nodes
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION bump_node_set_version();
CREATE TRIGGER nodes_version_delete AFTER DELETE ON nodes
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION bump_node_set_version();

-- +goose Down
DROP TRIGGER nodes_version_delete ON nodes;
DROP TRIGGER nodes_version_update ON nodes;
DROP TRIGGER nodes_version_insert ON nodes;
DROP FUNCTION bump_node_set_version();
DROP TABLE node_set_versions;
