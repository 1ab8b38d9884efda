-- +goose Up
-- Game-server instances placed on nodes, and each node's aggregate of their
-- reservations, so the planner's suggest-fit reads one row per node and never
-- the instance rows.

-- An instance's node must belong to the instance's organization: the
-- foreign key below is on (node_id, organization_id).
ALTER TABLE nodes ADD CONSTRAINT nodes_id_organization_key UNIQUE (id, organization_id);

ALTER TABLE nodes
    ADD COLUMN reserved_cpu_millis bigint NOT NULL DEFAULT 0,
    ADD COLUMN reserved_memory_mb  bigint NOT NULL DEFAULT 0,
    ADD COLUMN reserved_disk_gb    bigint NOT NULL DEFAULT 0,
    ADD COLUMN instance_count      integer NOT NULL DEFAULT 0;

-- suggest-fit lists an organization's nodes by name.
CREATE INDEX nodes_org_name_idx ON nodes (organization_id, name, id);

CREATE TABLE instances (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    node_id         uuid NOT NULL,
    name            text NOT NULL,
    template        text NOT NULL DEFAULT '',
    cpu_millis      integer NOT NULL CHECK (cpu_millis > 0),
    memory_mb       integer NOT NULL CHECK (memory_mb > 0),
    disk_gb         integer NOT NULL CHECK (disk_gb > 0),
    created_at      timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (node_id, organization_id) REFERENCES nodes (id, organization_id) ON DELETE CASCADE
);
CREATE INDEX instances_node_idx ON instances (node_id);
CREATE INDEX instances_org_idx ON instances (organization_id, created_at, id);

-- The aggregates are kept exact by statement-level triggers over transition
-- tables: one UPDATE per affected node per statement, whatever the number of
-- rows (a bulk insert of 100,000 instances updates each node once). The row
-- locks UPDATE takes serialize concurrent changes to one node, so the sums
-- stay exact. Nodes are locked in id order to avoid deadlocks between
-- concurrent multi-node statements.
-- +goose StatementBegin
CREATE FUNCTION instances_after_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM nodes WHERE id IN (SELECT node_id FROM new_rows) ORDER BY id FOR NO KEY UPDATE;
    UPDATE nodes SET
        reserved_cpu_millis = reserved_cpu_millis + d.cpu,
        reserved_memory_mb  = reserved_memory_mb + d.mem,
        reserved_disk_gb    = reserved_disk_gb + d.disk,
        instance_count      = instance_count + d.n
    FROM (SELECT node_id, sum(cpu_millis) AS cpu, sum(memory_mb) AS mem, sum(disk_gb) AS disk, count(*) AS n
          FROM new_rows GROUP BY node_id) d
    WHERE nodes.id = d.node_id;
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION instances_after_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- A node being deleted (the cascade) is no longer visible: nothing to update.
    PERFORM 1 FROM nodes WHERE id IN (SELECT node_id FROM old_rows) ORDER BY id FOR NO KEY UPDATE;
    UPDATE nodes SET
        reserved_cpu_millis = reserved_cpu_millis - d.cpu,
        reserved_memory_mb  = reserved_memory_mb - d.mem,
        reserved_disk_gb    = reserved_disk_gb - d.disk,
        instance_count      = instance_count - d.n
    FROM (SELECT node_id, sum(cpu_millis) AS cpu, sum(memory_mb) AS mem, sum(disk_gb) AS disk, count(*) AS n
          FROM old_rows GROUP BY node_id) d
    WHERE nodes.id = d.node_id;
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION instances_after_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM nodes WHERE id IN (SELECT node_id FROM new_rows UNION SELECT node_id FROM old_rows) ORDER BY id FOR NO KEY UPDATE;
    UPDATE nodes SET
        reserved_cpu_millis = reserved_cpu_millis + d.cpu,
        reserved_memory_mb  = reserved_memory_mb + d.mem,
        reserved_disk_gb    = reserved_disk_gb + d.disk,
        instance_count      = instance_count + d.n
    FROM (SELECT node_id, sum(cpu) AS cpu, sum(mem) AS mem, sum(disk) AS disk, sum(n) AS n
          FROM (SELECT node_id, cpu_millis AS cpu, memory_mb AS mem, disk_gb AS disk, 1 AS n FROM new_rows
                UNION ALL
                SELECT node_id, -cpu_millis, -memory_mb, -disk_gb, -1 FROM old_rows) u
          GROUP BY node_id
          HAVING sum(cpu) <> 0 OR sum(mem) <> 0 OR sum(disk) <> 0 OR sum(n) <> 0) d
    WHERE nodes.id = d.node_id;
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

CREATE TRIGGER instances_reserve_insert AFTER INSERT ON instances
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION instances_after_insert();
CREATE TRIGGER instances_reserve_delete AFTER DELETE ON instances
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION instances_after_delete();
CREATE TRIGGER instances_reserve_update AFTER UPDATE ON instances
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION instances_after_update();

-- +goose Down
DROP TABLE instances;
DROP FUNCTION instances_after_update();
DROP FUNCTION instances_after_delete();
DROP FUNCTION instances_after_insert();
DROP INDEX nodes_org_name_idx;
ALTER TABLE nodes
    DROP COLUMN instance_count,
    DROP COLUMN reserved_disk_gb,
    DROP COLUMN reserved_memory_mb,
    DROP COLUMN reserved_cpu_millis;
ALTER TABLE nodes DROP CONSTRAINT nodes_id_organization_key;
