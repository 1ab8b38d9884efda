-- name: InsertDNSRecord :one
INSERT INTO dns_records (organization_id, credential_id, zone_id, zone_name, type, name, content, ttl, proxied, priority,
                         node_id, auto, adopt, cloudflare_id, created_by)
VALUES (@organization_id, @credential_id, @zone_id, @zone_name, @type, @name, @content, @ttl, @proxied, sqlc.narg(priority),
        @node_id, @auto, @adopt, @cloudflare_id, @created_by)
RETURNING *;

-- name: InsertAutoDNSRecord :one
-- Auto-DNS for a node: a record of the same name, type and content that
-- already exists (made by hand) is left as it is (no row).
INSERT INTO dns_records (organization_id, credential_id, zone_id, zone_name, type, name, content, ttl, proxied, node_id, auto)
VALUES (@organization_id, @credential_id, @zone_id, @zone_name, @type, @name, @content, @ttl, @proxied, @node_id, true)
ON CONFLICT DO NOTHING
RETURNING *;

-- name: InsertFailedDNSRecord :one
-- A record auto-DNS could not even ask for (its name template gives no
-- valid name): kept failed with the reason.
INSERT INTO dns_records (organization_id, credential_id, zone_id, zone_name, type, name, content, ttl, proxied, node_id, auto, status, error)
VALUES (@organization_id, @credential_id, @zone_id, @zone_name, @type, @name, @content, @ttl, @proxied, @node_id, true, 'failed', @error)
ON CONFLICT DO NOTHING
RETURNING *;

-- name: GetDNSRecord :one
SELECT * FROM dns_records WHERE organization_id = @organization_id AND id = @id;

-- name: LockDNSRecord :one
SELECT * FROM dns_records WHERE organization_id = @organization_id AND id = @id FOR UPDATE;

-- name: ListDNSRecords :many
SELECT * FROM dns_records
WHERE organization_id = @organization_id
  AND (sqlc.narg(zone_id)::text IS NULL OR zone_id = sqlc.narg(zone_id))
  AND (sqlc.narg(type)::text IS NULL OR type = sqlc.narg(type))
  AND (sqlc.narg(name)::text IS NULL OR name = sqlc.narg(name))
  AND (sqlc.narg(node_id)::uuid IS NULL OR node_id = sqlc.narg(node_id))
  AND (CASE WHEN sqlc.narg(status)::text IS NULL THEN status <> 'deleted' ELSE status = sqlc.narg(status) END)
ORDER BY created_at, id
LIMIT @lim OFFSET @off;

-- name: CountDNSRecords :one
SELECT count(*) FROM dns_records
WHERE organization_id = @organization_id
  AND (sqlc.narg(zone_id)::text IS NULL OR zone_id = sqlc.narg(zone_id))
  AND (sqlc.narg(type)::text IS NULL OR type = sqlc.narg(type))
  AND (sqlc.narg(name)::text IS NULL OR name = sqlc.narg(name))
  AND (sqlc.narg(node_id)::uuid IS NULL OR node_id = sqlc.narg(node_id))
  AND (CASE WHEN sqlc.narg(status)::text IS NULL THEN status <> 'deleted' ELSE status = sqlc.narg(status) END);

-- name: ListLiveDNSRecordsByName :many
-- The organization's live records of one name in a zone (the CNAME rule).
SELECT * FROM dns_records
WHERE organization_id = @organization_id AND zone_id = @zone_id AND name = @name AND status <> 'deleted'
ORDER BY created_at, id;

-- name: UpdateDNSRecordDesired :one
-- A new desired record: synced again by a new job.
UPDATE dns_records
SET name = @name, content = @content, ttl = @ttl, proxied = @proxied, priority = sqlc.narg(priority),
    status = 'pending', error = '', generation = generation + 1, updated_at = now()
WHERE organization_id = @organization_id AND id = @id
RETURNING *;

-- name: MarkDNSRecordDeleting :one
UPDATE dns_records
SET status = 'deleting', error = '', generation = generation + 1, updated_at = now()
WHERE organization_id = @organization_id AND id = @id
RETURNING *;

-- name: FinishDNSRecordSync :execrows
-- A sync's outcome, written only if the record did not change during it.
UPDATE dns_records
SET status = @status, cloudflare_id = CASE WHEN @cloudflare_id::text = '' THEN cloudflare_id ELSE @cloudflare_id END, error = @error, adopt = adopt AND @status <> 'synced',
    synced_at = CASE WHEN @status IN ('synced', 'deleted') THEN now() ELSE synced_at END, updated_at = now()
WHERE organization_id = @organization_id AND id = @id AND generation = @generation;

-- name: SetDNSRecordError :exec
-- The last attempt's error of a record still being synced (retrying).
UPDATE dns_records SET error = @error, updated_at = now()
WHERE organization_id = @organization_id AND id = @id AND generation = @generation;

-- name: FailDNSRecord :exec
UPDATE dns_records SET status = 'failed', error = @error, updated_at = now()
WHERE organization_id = @organization_id AND id = @id AND status IN ('pending', 'deleting', 'synced');

-- name: RepairedDNSRecord :execrows
-- Reconcile set a synced record back (or recreated it) in Cloudflare.
UPDATE dns_records SET cloudflare_id = @cloudflare_id, synced_at = now(), updated_at = now()
WHERE organization_id = @organization_id AND id = @id AND generation = @generation AND status = 'synced';

-- name: ListSyncedDNSRecordsOfZone :many
SELECT * FROM dns_records
WHERE organization_id = @organization_id AND zone_id = @zone_id AND status = 'synced'
ORDER BY id;

-- name: ListDNSRecordIDsOfZone :many
-- Every record row of a zone that Cloudflare may hold (to tell our own
-- markers from orphans).
SELECT id FROM dns_records WHERE organization_id = @organization_id AND zone_id = @zone_id AND status <> 'deleted';

-- name: ListDNSZonesInUse :many
-- The zones an organization has live records in, once per credential its
-- records there use (each is reconciled with its own credential).
SELECT DISTINCT ON (zone_id, credential_id) zone_id, zone_name, credential_id
FROM dns_records
WHERE organization_id = @organization_id AND status IN ('synced', 'failed') AND credential_id IS NOT NULL
ORDER BY zone_id, credential_id, updated_at DESC;

-- name: ListOrganizationsWithDNS :many
SELECT DISTINCT organization_id FROM dns_records WHERE status = 'synced';

-- name: ListAutoDNSRecordsOfNode :many
SELECT * FROM dns_records
WHERE organization_id = @organization_id AND node_id = @node_id AND auto AND status <> 'deleted'
ORDER BY type;

-- name: ListDNSRecordsOfNodes :many
-- What node answers show: each node's live records (auto first).
SELECT node_id, id, type, name, auto FROM dns_records
WHERE organization_id = @organization_id AND node_id = ANY(@node_ids::uuid[]) AND status <> 'deleted'
ORDER BY node_id, auto DESC, type, created_at;

-- name: GetNodeOfProvision :one
SELECT * FROM nodes WHERE organization_id = @organization_id AND provision_id = @provision_id;

-- name: GetDNSZoneList :one
SELECT * FROM dns_zone_lists WHERE organization_id = @organization_id AND credential_id = @credential_id;

-- name: UpsertDNSZoneList :exec
INSERT INTO dns_zone_lists (organization_id, credential_id, zones, read_at)
VALUES (@organization_id, @credential_id, @zones, @read_at)
ON CONFLICT (organization_id, credential_id) DO UPDATE SET zones = excluded.zones, read_at = excluded.read_at;

-- name: GetDNSZoneCopy :one
SELECT * FROM dns_zone_copies WHERE organization_id = @organization_id AND zone_id = @zone_id;

-- name: ReplaceDNSZoneCopy :exec
-- Starts a whole-zone copy over (its records follow with InsertDNSZoneRecords).
WITH gone AS (
    DELETE FROM dns_zone_records WHERE organization_id = @organization_id AND zone_id = @zone_id
)
INSERT INTO dns_zone_copies (organization_id, zone_id, read_at)
VALUES (@organization_id, @zone_id, @read_at)
ON CONFLICT (organization_id, zone_id) DO UPDATE SET read_at = excluded.read_at;

-- name: InsertDNSZoneRecords :exec
INSERT INTO dns_zone_records (organization_id, zone_id, cloudflare_id, type, name, content, ttl, proxied, priority, comment)
-- @records: a JSON array of {cloudflare_id, type, name, content, ttl, proxied, priority, comment}.
SELECT @organization_id, @zone_id, r.cloudflare_id, r.type, r.name, r.content, r.ttl, r.proxied, r.priority, r.comment
FROM jsonb_to_recordset(@records::jsonb)
    AS r (cloudflare_id text, type text, name text, content text, ttl integer, proxied boolean, priority integer, comment text)
ON CONFLICT (organization_id, zone_id, cloudflare_id) DO UPDATE
SET type = excluded.type, name = excluded.name, content = excluded.content, ttl = excluded.ttl,
    proxied = excluded.proxied, priority = excluded.priority, comment = excluded.comment;

-- name: PutDNSZoneRecord :exec
-- One record shardform wrote, kept in the zone's copy (when there is one).
INSERT INTO dns_zone_records (organization_id, zone_id, cloudflare_id, type, name, content, ttl, proxied, priority, comment)
SELECT @organization_id, @zone_id, @cloudflare_id, @type, @name, @content, @ttl, @proxied, sqlc.narg(priority), @comment
WHERE EXISTS (SELECT 1 FROM dns_zone_copies c WHERE c.organization_id = @organization_id AND c.zone_id = @zone_id)
ON CONFLICT (organization_id, zone_id, cloudflare_id) DO UPDATE
SET type = excluded.type, name = excluded.name, content = excluded.content, ttl = excluded.ttl,
    proxied = excluded.proxied, priority = excluded.priority, comment = excluded.comment;

-- name: DeleteDNSZoneRecord :exec
DELETE FROM dns_zone_records WHERE organization_id = @organization_id AND zone_id = @zone_id AND cloudflare_id = @cloudflare_id;

-- name: ListDNSZoneRecordsByName :many
SELECT * FROM dns_zone_records
WHERE organization_id = @organization_id AND zone_id = @zone_id AND name = @name
ORDER BY type, cloudflare_id;

-- name: GetDNSAutoConfig :one
SELECT * FROM dns_auto_configs WHERE organization_id = @organization_id;

-- name: UpsertDNSAutoConfig :one
INSERT INTO dns_auto_configs (organization_id, enabled, credential_id, zone_id, zone_name, name_template, ttl, proxied, ipv6)
VALUES (@organization_id, @enabled, @credential_id, @zone_id, @zone_name, @name_template, @ttl, @proxied, @ipv6)
ON CONFLICT (organization_id) DO UPDATE
SET enabled = excluded.enabled, credential_id = excluded.credential_id, zone_id = excluded.zone_id, zone_name = excluded.zone_name,
    name_template = excluded.name_template, ttl = excluded.ttl, proxied = excluded.proxied, ipv6 = excluded.ipv6, updated_at = now()
RETURNING *;

-- name: UpsertDNSReconcile :exec
INSERT INTO dns_reconciles (organization_id, started_at, finished_at, report)
VALUES (@organization_id, @started_at, @finished_at, @report)
ON CONFLICT (organization_id) DO UPDATE SET started_at = excluded.started_at, finished_at = excluded.finished_at, report = excluded.report;

-- name: GetDNSReconcile :one
SELECT * FROM dns_reconciles WHERE organization_id = @organization_id;

-- name: GetOrganizationName :one
SELECT name FROM organizations WHERE id = @id;

-- name: CountDNSUsesOfCredential :one
-- What still needs a credential: live records, and auto-DNS when enabled.
SELECT
    (SELECT count(*) FROM dns_records r WHERE r.organization_id = @organization_id AND r.credential_id = @credential_id AND r.status <> 'deleted')::bigint AS records,
    EXISTS (SELECT 1 FROM dns_auto_configs a WHERE a.organization_id = @organization_id AND a.credential_id = @credential_id AND a.enabled) AS auto_dns;

-- name: DNSRecordsByIDs :many
-- The records a search found (search package), in no order.
SELECT * FROM dns_records
WHERE organization_id = @organization_id AND id = ANY(@ids::uuid[]);

-- name: DNSRecordsOfNodesFull :many
-- The nodes' live records (those node answers list), for search's dns_records extend.
SELECT * FROM dns_records
WHERE organization_id = @organization_id AND node_id = ANY(@node_ids::uuid[]) AND status <> 'deleted'
ORDER BY node_id, auto DESC, type, created_at;

-- name: CountDNSZoneRecords :one
SELECT count(*) FROM dns_zone_records WHERE organization_id = @organization_id AND zone_id = @zone_id;
