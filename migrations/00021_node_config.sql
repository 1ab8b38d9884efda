-- +goose Up
-- A node's firewall is part of its provision request's desired
-- configuration: rules rendered into the driver's Terraform (hcloud_firewall,
-- the aws_security_group's ingress, the local driver's terraform_data
-- input). Every request starts with SSH and ping from anywhere.
CREATE TABLE firewall_rules (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    provision_id    uuid NOT NULL REFERENCES provision_requests (id) ON DELETE CASCADE,
    direction       text NOT NULL DEFAULT 'in' CHECK (direction = 'in'),
    protocol        text NOT NULL CHECK (protocol IN ('tcp', 'udp', 'icmp')),
    port_low        integer NOT NULL DEFAULT 0,
    port_high       integer NOT NULL DEFAULT 0,
    source_ips      text[] NOT NULL,
    description     text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now(),
    CHECK ((protocol = 'icmp' AND port_low = 0 AND port_high = 0)
        OR (protocol <> 'icmp' AND port_low BETWEEN 1 AND 65535 AND port_high BETWEEN port_low AND 65535)),
    UNIQUE (provision_id, protocol, port_low, port_high, source_ips)
);
CREATE INDEX firewall_rules_provision_idx ON firewall_rules (provision_id, created_at, id);

-- The rules the drivers rendered before rules were stored.
INSERT INTO firewall_rules (organization_id, provision_id, protocol, port_low, port_high, source_ips, description, created_at)
SELECT organization_id, id, 'tcp', 22, 22, ARRAY['0.0.0.0/0', '::/0'], 'ssh', created_at FROM provision_requests;
INSERT INTO firewall_rules (organization_id, provision_id, protocol, source_ips, description, created_at)
SELECT organization_id, id, 'icmp', ARRAY['0.0.0.0/0', '::/0'], 'ping', created_at + interval '1 microsecond' FROM provision_requests;

-- A plan run queued with apply: true (POST /v1/nodes/{id}/resize) is
-- followed by its apply when it succeeds.
ALTER TABLE provision_runs ADD COLUMN auto_apply boolean NOT NULL DEFAULT false;

-- +goose Down
ALTER TABLE provision_runs DROP COLUMN auto_apply;
DROP TABLE firewall_rules;
