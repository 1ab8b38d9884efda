-- name: EnsureMasterKeyCheck :one
-- Stores mac the first time and answers the stored one.
WITH ins AS (
    INSERT INTO master_key_check (mac) VALUES (@mac)
    ON CONFLICT (id) DO NOTHING
    RETURNING mac
)
SELECT mac FROM ins
UNION ALL
SELECT mac FROM master_key_check
LIMIT 1;
