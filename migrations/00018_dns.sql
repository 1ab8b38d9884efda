-- +goose Up
-- DNS records shardform manages in Cloudflare zones: the desired record
-- (what the API or auto-DNS asked for) and the outcome of its last sync.
-- Every record shardform creates carries the comment
-- "shardform:<organization id>:<record id>" in Cloudflare: shardform
-- updates and deletes only records carrying its marker for the organization.
CREATE TABLE dns_records (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    -- the cloudflare credential the record is synced with (NULL once deleted:
    -- the next sync fails the record, naming why).
    credential_id   uuid REFERENCES credentials (id) ON DELETE SET NULL,
    zone_id         text NOT NULL,
    zone_name       text NOT NULL,
    type            text NOT NULL CHECK (type IN ('A', 'AAAA', 'CNAME', 'TXT', 'MX', 'SRV', 'CAA')),
    -- fully qualified, lowercase, no trailing dot.
    name            text NOT NULL,
    -- Cloudflare's form of the content (SRV: "weight port target"; CAA:
    -- flags tag "value").
    content         text NOT NULL,
    ttl             integer NOT NULL DEFAULT 1 CHECK (ttl = 1 OR ttl BETWEEN 60 AND 86400),
    proxied         boolean NOT NULL DEFAULT false,
    priority        integer CHECK (priority BETWEEN 0 AND 65535),
    -- the node the record is for; not a foreign key, so a destroyed
    -- node's records (deleted with it) still name it.
    node_id         uuid,
    -- made by auto-DNS for its node (one per node and type).
    auto            boolean NOT NULL DEFAULT false,
    -- asked to take over an existing record without a marker.
    adopt           boolean NOT NULL DEFAULT false,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'synced', 'failed', 'deleting', 'deleted')),
    -- Cloudflare's record id once created (or adopted).
    cloudflare_id   text NOT NULL DEFAULT '',
    error           text NOT NULL DEFAULT '',
    -- moves with every change of the desired record: a sync writes its
    -- outcome only if the record did not change under it.
    generation      bigint NOT NULL DEFAULT 1,
    synced_at       timestamptz,
    created_by      uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX dns_records_org_idx ON dns_records (organization_id, created_at, id);
CREATE INDEX dns_records_zone_idx ON dns_records (organization_id, zone_id, name);
CREATE INDEX dns_records_node_idx ON dns_records (node_id) WHERE node_id IS NOT NULL;
-- one live record per name, type and content in a zone of an organization.
CREATE UNIQUE INDEX dns_records_live_key ON dns_records (organization_id, zone_id, type, name, content)
    WHERE status <> 'deleted';
-- auto-DNS: one live record per node and type.
CREATE UNIQUE INDEX dns_records_auto_key ON dns_records (node_id, type) WHERE auto AND status <> 'deleted';

-- The zones a credential can see, as last read from Cloudflare (cached
-- briefly: every process reads the same rows).
CREATE TABLE dns_zone_lists (
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    credential_id   uuid NOT NULL REFERENCES credentials (id) ON DELETE CASCADE,
    zones           jsonb NOT NULL,
    read_at         timestamptz NOT NULL,
    PRIMARY KEY (organization_id, credential_id)
);

-- A zone's records as last read from Cloudflare (whole-zone reads, kept up
-- to date by shardform's own writes): what create checks names against, so
-- a create needs no list call while the copy is fresh.
CREATE TABLE dns_zone_copies (
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    zone_id         text NOT NULL,
    read_at         timestamptz NOT NULL,
    PRIMARY KEY (organization_id, zone_id)
);
CREATE TABLE dns_zone_records (
    organization_id uuid NOT NULL,
    zone_id         text NOT NULL,
    cloudflare_id   text NOT NULL,
    type            text NOT NULL,
    name            text NOT NULL,
    content         text NOT NULL,
    ttl             integer NOT NULL,
    proxied         boolean NOT NULL,
    priority        integer,
    comment         text NOT NULL,
    PRIMARY KEY (organization_id, zone_id, cloudflare_id),
    FOREIGN KEY (organization_id, zone_id) REFERENCES dns_zone_copies (organization_id, zone_id) ON DELETE CASCADE
);
CREATE INDEX dns_zone_records_name_idx ON dns_zone_records (organization_id, zone_id, name);

-- Auto-DNS: the records every node registered by an apply gets.
CREATE TABLE dns_auto_configs (
    organization_id uuid PRIMARY KEY REFERENCES organizations (id) ON DELETE CASCADE,
    enabled         boolean NOT NULL DEFAULT false,
    credential_id   uuid REFERENCES credentials (id) ON DELETE SET NULL,
    zone_id         text NOT NULL DEFAULT '',
    zone_name       text NOT NULL DEFAULT '',
    name_template   text NOT NULL DEFAULT '{name}',
    ttl             integer NOT NULL DEFAULT 1,
    proxied         boolean NOT NULL DEFAULT false,
    ipv6            boolean NOT NULL DEFAULT true,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- The latest drift check (dns_reconcile) of each organization.
CREATE TABLE dns_reconciles (
    organization_id uuid PRIMARY KEY REFERENCES organizations (id) ON DELETE CASCADE,
    started_at      timestamptz NOT NULL,
    finished_at     timestamptz NOT NULL,
    report          jsonb NOT NULL
);

-- +goose Down
DROP TABLE dns_reconciles;
DROP TABLE dns_auto_configs;
DROP TABLE dns_zone_records;
DROP TABLE dns_zone_copies;
DROP TABLE dns_zone_lists;
DROP TABLE dns_records;
