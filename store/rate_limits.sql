-- name: HitRateLimits :many
-- Adds n to the counter of each (key, window_start) (the pairs are
-- distinct) and returns the new counts. The statement's own transaction
-- commits without waiting for the WAL flush (set_config(..., true) lasts
-- until that commit): a counter is not worth a disk flush, and every
-- request of one token updates the same row, whose lock a synchronous
-- commit would hold through the flush. A crash may forget the last fraction
-- of a second of hits.
WITH hits AS (
    SELECT unnest(@keys::text[]) AS key, unnest(@window_starts::timestamptz[]) AS window_start,
        unnest(@ns::int[]) AS n, unnest(@expires_ats::timestamptz[]) AS expires_at
)
INSERT INTO rate_limit_counters (key, window_start, count, expires_at)
SELECT h.key, h.window_start, h.n, h.expires_at
FROM hits h, (SELECT set_config('synchronous_commit', 'off', true)) AS async_commit
ON CONFLICT (key, window_start) DO UPDATE SET count = rate_limit_counters.count + excluded.count
RETURNING key, window_start, count;

-- name: GetRateLimit :one
SELECT coalesce(sum(count), 0)::int FROM rate_limit_counters
WHERE key = @key AND window_start = @window_start;

-- name: ResetRateLimit :exec
DELETE FROM rate_limit_counters WHERE key = @key;

-- name: DeleteExpiredRateLimits :execrows
DELETE FROM rate_limit_counters WHERE expires_at <= now();
