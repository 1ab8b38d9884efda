-- name: HitRateLimit :one
-- Adds n to the counter of key's window and returns the new count.
INSERT INTO rate_limit_counters (key, window_start, count, expires_at)
VALUES (@key, @window_start, @n, @expires_at)
ON CONFLICT (key, window_start) DO UPDATE SET count = rate_limit_counters.count + excluded.count
RETURNING count;

-- name: GetRateLimit :one
SELECT coalesce(sum(count), 0)::int FROM rate_limit_counters
WHERE key = @key AND window_start = @window_start;

-- name: ResetRateLimit :exec
DELETE FROM rate_limit_counters WHERE key = @key;

-- name: DeleteExpiredRateLimits :execrows
DELETE FROM rate_limit_counters WHERE expires_at <= now();
