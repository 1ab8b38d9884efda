-- +goose Up
-- A host certificate stops being trusted when its node is deleted (or
-- destroyed): the organization's host KRL (GET /v1/ssh/host-krl, ssh's
-- RevokedHostKeys) lists it until it expires. The trigger covers every way a
-- node row goes, so no code path can forget it.
ALTER TABLE ssh_host_certificates ADD COLUMN revoked_at timestamptz;
CREATE INDEX ssh_host_certificates_revoked_idx ON ssh_host_certificates (organization_id, valid_before)
    WHERE revoked_at IS NOT NULL;

-- +goose StatementBegin
CREATE FUNCTION nodes_revoke_host_certificates() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE ssh_host_certificates SET revoked_at = now()
    WHERE organization_id = OLD.organization_id AND node_id = OLD.id AND revoked_at IS NULL;
    RETURN OLD;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER nodes_revoke_host_certificates AFTER DELETE ON nodes
    FOR EACH ROW EXECUTE FUNCTION nodes_revoke_host_certificates();

-- +goose Down
DROP TRIGGER nodes_revoke_host_certificates ON nodes;
DROP FUNCTION nodes_revoke_host_certificates();
DROP INDEX ssh_host_certificates_revoked_idx;
ALTER TABLE ssh_host_certificates DROP COLUMN revoked_at;
