-- +goose Up
-- User certificate serials come from one sequence shared by every CA key:
-- nextval takes no row lock, so signers no longer queue on the key's row
-- (ssh_ca_keys.next_serial, which every certificate used to update). A
-- sequence never hands out a number twice, even across a crash (it logs
-- ahead of the values it gives), so serials stay unique per CA key (the
-- UNIQUE (ca_key_id, serial) constraint still holds) and are never reused;
-- they are no longer consecutive per key, which neither OpenSSH nor the KRL
-- needs. next_serial is kept for the rows written before this migration.
CREATE SEQUENCE ssh_serials AS bigint MINVALUE 1;
SELECT setval('ssh_serials', GREATEST(
    COALESCE((SELECT max(next_serial) FROM ssh_ca_keys), 1),
    COALESCE((SELECT max(serial) + 1 FROM ssh_certificates), 1)), false);

-- policy_version counts policy changes (0: the default policy, never set).
-- A worker records a certificate only if the policy it checked is still the
-- current one, so it can keep the policy in memory between jobs.
ALTER TABLE ssh_settings ADD COLUMN policy_version bigint NOT NULL DEFAULT 0;
UPDATE ssh_settings SET policy_version = 1 WHERE policy IS NOT NULL;

-- +goose Down
-- Per-key counters past every serial the sequence gave to a recorded
-- certificate.
UPDATE ssh_ca_keys k SET next_serial = GREATEST(k.next_serial,
    (SELECT COALESCE(max(c.serial), 0) + 1 FROM ssh_certificates c WHERE c.ca_key_id = k.id));
ALTER TABLE ssh_settings DROP COLUMN policy_version;
DROP SEQUENCE ssh_serials;
