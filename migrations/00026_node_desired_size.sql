-- +goose Up
-- A resize is pending from its request (POST /v1/nodes/{id}/resize) until
-- its apply: the node keeps the size the cloud gives it (vcpu, memory_mb,
-- disk_gb) and records here the size asked for; placements and drains
-- count the smaller of the two in each resource, so a downsize cannot be
-- overfilled between its request and its apply. The apply clears it.
ALTER TABLE nodes
    ADD COLUMN desired_instance_type text,
    ADD COLUMN desired_vcpu integer,
    ADD COLUMN desired_memory_mb integer,
    ADD COLUMN desired_disk_gb integer,
    ADD CONSTRAINT nodes_desired_size_check CHECK (
        (desired_instance_type IS NULL AND desired_vcpu IS NULL AND desired_memory_mb IS NULL AND desired_disk_gb IS NULL)
        OR (desired_instance_type IS NOT NULL AND desired_vcpu IS NOT NULL AND desired_memory_mb IS NOT NULL AND desired_disk_gb IS NOT NULL));

-- +goose Down
ALTER TABLE nodes
    DROP CONSTRAINT nodes_desired_size_check,
    DROP COLUMN desired_instance_type,
    DROP COLUMN desired_vcpu,
    DROP COLUMN desired_memory_mb,
    DROP COLUMN desired_disk_gb;
