-- +goose Up
-- Nodes that are born trusted: a registration token (shardform_reg_...,
-- stored hashed, single use by default, short-lived, optionally bound to the
-- provision request whose node it may register) is exchanged once by
-- POST /v1/agent/register for a per-node agent token (shardform_agent_...,
-- stored hashed). Deleting the node deletes its agent, which revokes the token.
CREATE TABLE node_registration_tokens (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    provision_id    uuid REFERENCES provision_requests (id) ON DELETE CASCADE,
    created_by      uuid REFERENCES users (id) ON DELETE SET NULL,
    name            text NOT NULL DEFAULT '',
    labels          jsonb NOT NULL DEFAULT '{}',
    display_prefix  text NOT NULL,
    token_hash      bytea NOT NULL UNIQUE,
    uses_allowed    integer NOT NULL CHECK (uses_allowed >= 1),
    uses            integer NOT NULL DEFAULT 0 CHECK (uses >= 0),
    not_before      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    last_used_at    timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX node_registration_tokens_org_idx ON node_registration_tokens (organization_id, created_at DESC, id);

CREATE TABLE node_agents (
    node_id               uuid PRIMARY KEY,
    organization_id       uuid NOT NULL,
    token_hash            bytea NOT NULL UNIQUE,
    display_prefix        text NOT NULL,
    registration_token_id uuid REFERENCES node_registration_tokens (id) ON DELETE SET NULL,
    hostname              text NOT NULL DEFAULT '',
    version               text NOT NULL DEFAULT '',
    host_public_keys      text[] NOT NULL DEFAULT '{}',
    facts                 jsonb NOT NULL DEFAULT '{}',
    inventory             jsonb NOT NULL DEFAULT '{}',
    registered_at         timestamptz NOT NULL DEFAULT now(),
    rotated_at            timestamptz,
    last_seen_at          timestamptz,
    FOREIGN KEY (node_id, organization_id) REFERENCES nodes (id, organization_id) ON DELETE CASCADE
);
CREATE INDEX node_agents_org_idx ON node_agents (organization_id, registered_at, node_id);

-- A node whose agent has not been heard from for three heartbeat
-- intervals is unreachable (a periodic job), and ready again at its next
-- heartbeat. The status check gains 'unreachable' whatever other values
-- earlier migrations added to it.
-- +goose StatementBegin
DO $$
DECLARE def text;
BEGIN
    SELECT pg_get_constraintdef(oid) INTO def FROM pg_constraint
    WHERE conrelid = 'nodes'::regclass AND conname = 'nodes_status_check';
    ALTER TABLE nodes DROP CONSTRAINT nodes_status_check;
    EXECUTE 'ALTER TABLE nodes ADD CONSTRAINT nodes_status_check '
        || replace(def, '''maintenance''::text', '''maintenance''::text, ''unreachable''::text');
END $$;
-- +goose StatementEnd
CREATE INDEX node_agents_last_seen_idx ON node_agents (last_seen_at);

-- +goose Down
UPDATE nodes SET status = 'ready' WHERE status = 'unreachable';
-- +goose StatementBegin
DO $$
DECLARE def text;
BEGIN
    SELECT pg_get_constraintdef(oid) INTO def FROM pg_constraint
    WHERE conrelid = 'nodes'::regclass AND conname = 'nodes_status_check';
    ALTER TABLE nodes DROP CONSTRAINT nodes_status_check;
    EXECUTE 'ALTER TABLE nodes ADD CONSTRAINT nodes_status_check '
        || replace(def, ', ''unreachable''::text', '');
END $$;
-- +goose StatementEnd
DROP TABLE node_agents;
DROP TABLE node_registration_tokens;
