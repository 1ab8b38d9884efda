-- +goose Up
-- Search (POST /v1/{resource}/search): trigram indexes so that a
-- case-insensitive substring search (ILIKE '%...%') of the searched text
-- columns uses an index, and btree indexes for the columns filtered most.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE INDEX nodes_name_trgm_idx ON nodes USING gin (name gin_trgm_ops);
CREATE INDEX nodes_ipv4_trgm_idx ON nodes USING gin (ipv4 gin_trgm_ops);
CREATE INDEX dns_records_name_trgm_idx ON dns_records USING gin (name gin_trgm_ops);
CREATE INDEX provision_requests_name_trgm_idx ON provision_requests USING gin (name gin_trgm_ops);
CREATE INDEX instances_name_trgm_idx ON instances USING gin (name gin_trgm_ops);

CREATE INDEX nodes_org_region_idx ON nodes (organization_id, region, status, power_state);
CREATE INDEX nodes_org_provider_idx ON nodes (organization_id, provider);
CREATE INDEX nodes_org_instance_type_idx ON nodes (organization_id, instance_type);
CREATE INDEX nodes_org_status_idx ON nodes (organization_id, status, power_state);
CREATE INDEX nodes_labels_idx ON nodes USING gin (labels jsonb_path_ops);
CREATE INDEX provision_requests_org_status_idx ON provision_requests (organization_id, status);
CREATE INDEX provision_requests_node_idx ON provision_requests (node_id) WHERE node_id IS NOT NULL;
CREATE INDEX instances_org_node_idx ON instances (organization_id, node_id);
CREATE INDEX ssh_certificates_org_user_idx ON ssh_certificates (organization_id, user_id, created_at DESC);
CREATE INDEX dns_records_org_node_idx ON dns_records (organization_id, node_id) WHERE node_id IS NOT NULL;

-- +goose Down
DROP INDEX dns_records_org_node_idx;
DROP INDEX ssh_certificates_org_user_idx;
DROP INDEX instances_org_node_idx;
DROP INDEX provision_requests_node_idx;
DROP INDEX provision_requests_org_status_idx;
DROP INDEX nodes_labels_idx;
DROP INDEX nodes_org_status_idx;
DROP INDEX nodes_org_instance_type_idx;
DROP INDEX nodes_org_provider_idx;
DROP INDEX nodes_org_region_idx;
DROP INDEX instances_name_trgm_idx;
DROP INDEX provision_requests_name_trgm_idx;
DROP INDEX dns_records_name_trgm_idx;
DROP INDEX nodes_ipv4_trgm_idx;
DROP INDEX nodes_name_trgm_idx;
-- the extension stays: other objects may use it.
