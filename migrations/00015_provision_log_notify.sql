-- +goose Up
-- Live log followers (GET /v1/provision/{id}/logs?follow=1) wake on
-- notifications instead of polling: every stored chunk of Terraform output
-- and every status change (or deletion) of a request sends its id on
-- shardform_provision_logs, from whichever process wrote it. Each API
-- process holds one LISTEN connection and fans the ids out to its followers.
-- Notifications with the same payload in one transaction are sent once.

-- +goose StatementBegin
CREATE FUNCTION shardform_notify_provision_log() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('shardform_provision_logs', NEW.provision_id::text);
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION shardform_notify_provision_status() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('shardform_provision_logs', OLD.id::text);
    ELSE
        PERFORM pg_notify('shardform_provision_logs', NEW.id::text);
    END IF;
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

CREATE TRIGGER provision_logs_notify AFTER INSERT ON provision_logs
    FOR EACH ROW EXECUTE FUNCTION shardform_notify_provision_log();

CREATE TRIGGER provision_requests_status_notify AFTER UPDATE OF status ON provision_requests
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION shardform_notify_provision_status();

-- A follower of a deleted request (its organization was deleted) learns it
-- is gone instead of waiting for lines that never come.
CREATE TRIGGER provision_requests_delete_notify AFTER DELETE ON provision_requests
    FOR EACH ROW EXECUTE FUNCTION shardform_notify_provision_status();

-- +goose Down
DROP TRIGGER provision_requests_delete_notify ON provision_requests;
DROP TRIGGER provision_requests_status_notify ON provision_requests;
DROP TRIGGER provision_logs_notify ON provision_logs;
DROP FUNCTION shardform_notify_provision_status();
DROP FUNCTION shardform_notify_provision_log();
