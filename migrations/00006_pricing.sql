-- +goose Up
-- Live pricing read from a provider's API (the pricing_refresh job) with an
-- organization's default credential, and the latest fleet report of each
-- organization (the fleet_report job).

-- One row per organization and provider: the newest successful read (types,
-- read_at) and the outcome of the latest attempt (attempted_at, error). A
-- failed refresh keeps the previous good read; the planner falls back to the
-- embedded snapshot for providers with none.
CREATE TABLE live_pricing (
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    provider        text NOT NULL,
    -- []planner.InstanceType as JSON, prices as exact decimal strings.
    types           jsonb NOT NULL DEFAULT '[]',
    type_count      integer NOT NULL DEFAULT 0,
    read_at         timestamptz,
    attempted_at    timestamptz NOT NULL,
    error           text NOT NULL DEFAULT '',
    PRIMARY KEY (organization_id, provider)
);

-- The latest fleet report of an organization (a new run replaces it).
CREATE TABLE fleet_reports (
    organization_id uuid PRIMARY KEY REFERENCES organizations (id) ON DELETE CASCADE,
    job_id          bigint NOT NULL,
    generated_at    timestamptz NOT NULL,
    -- capacity.FleetReport as JSON (json, not jsonb: kept as written, key order included).
    report          json NOT NULL
);

-- +goose Down
DROP TABLE fleet_reports;
DROP TABLE live_pricing;
