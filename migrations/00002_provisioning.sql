-- +goose Up
CREATE TABLE provision_requests (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    created_by      uuid REFERENCES users (id) ON DELETE SET NULL,
    provider        text NOT NULL,
    region          text NOT NULL,
    instance_type   text NOT NULL,
    name            text NOT NULL,
    image           text NOT NULL DEFAULT '',
    ssh_keys        text[] NOT NULL DEFAULT '{}',
    labels          jsonb NOT NULL DEFAULT '{}',
    status          text NOT NULL CHECK (status IN ('pending', 'planning', 'planned', 'applying', 'applied', 'destroying', 'destroyed', 'failed')),
    error           text NOT NULL DEFAULT '',
    plan_summary    jsonb,
    -- the saved plan, sealed under the master key: it holds variable values.
    plan_file       bytea,
    node_id         uuid,
    idempotency_key text,
    request_hash    bytea,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
-- A name is taken while its request is live (anything but destroyed).
CREATE UNIQUE INDEX provision_requests_live_name ON provision_requests (organization_id, name) WHERE status <> 'destroyed';
CREATE UNIQUE INDEX provision_requests_idempotency ON provision_requests (organization_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX provision_requests_org_idx ON provision_requests (organization_id, created_at DESC, id);

CREATE TABLE nodes (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    -- one node per provision request, whatever retries happen.
    provision_id    uuid UNIQUE REFERENCES provision_requests (id) ON DELETE SET NULL,
    name            text NOT NULL,
    provider        text NOT NULL,
    region          text NOT NULL,
    instance_type   text NOT NULL,
    vcpu            integer NOT NULL,
    memory_mb       integer NOT NULL,
    disk_gb         integer NOT NULL,
    ipv4            text NOT NULL DEFAULT '',
    ipv6            text NOT NULL DEFAULT '',
    server_id       text NOT NULL DEFAULT '',
    status          text NOT NULL DEFAULT 'ready' CHECK (status IN ('ready', 'cordoned', 'maintenance')),
    labels          jsonb NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX nodes_org_idx ON nodes (organization_id, created_at, id);

-- Every Terraform run's output, in order, kept after the run.
CREATE TABLE provision_logs (
    id           bigserial PRIMARY KEY,
    provision_id uuid NOT NULL REFERENCES provision_requests (id) ON DELETE CASCADE,
    operation    text NOT NULL,
    chunk        text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX provision_logs_provision_idx ON provision_logs (provision_id, id);

-- +goose Down
DROP TABLE provision_logs;
DROP TABLE nodes;
DROP TABLE provision_requests;
