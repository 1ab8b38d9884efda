-- +goose Up
-- The credential a provision request runs with: named by the request or the
-- organization's default for the driver's provider, resolved at creation so
-- plan, apply and destroy use the same one. A credential in use by a live
-- request cannot be deleted (the service refuses with 409); once a request
-- is destroyed its reference is cleared with the credential.
ALTER TABLE provision_requests
    ADD COLUMN credential_id uuid REFERENCES credentials (id) ON DELETE SET NULL;
CREATE INDEX provision_requests_credential_idx ON provision_requests (credential_id) WHERE credential_id IS NOT NULL;

-- +goose Down
ALTER TABLE provision_requests DROP COLUMN credential_id;
