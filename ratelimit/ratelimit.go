// Package ratelimit counts requests in fixed windows stored in Postgres, so
// every API process enforces one shared limit.
package ratelimit

import (
	"context"
	"fmt"
	"time"

	"github.com/shardform/shardform/store"
)

// Limiter counts hits per key and window.
type Limiter struct {
	db  store.DBTX
	q   *store.Queries
	now func() time.Time
}

// New returns a Limiter on db. now is the clock (time.Now in production).
func New(db store.DBTX, now func() time.Time) *Limiter {
	return &Limiter{db: db, q: store.New(), now: now}
}

// Result is the state of one key's window after a hit.
type Result struct {
	Limit     int
	Count     int
	Remaining int
	Reset     time.Time // when the window ends
	Allowed   bool
}

// RetryAfter is how long until the window resets.
func (r Result) RetryAfter(now time.Time) time.Duration {
	d := r.Reset.Sub(now)
	if d < time.Second {
		d = time.Second
	}
	return d
}

// Hit counts one request for key in the current window of the given length
// and reports whether it stays within limit.
func (l *Limiter) Hit(ctx context.Context, key string, limit int, window time.Duration) (Result, error) {
	start, end := l.window(window)
	n, err := l.q.HitRateLimit(ctx, l.db, store.HitRateLimitParams{Key: key, WindowStart: start, N: 1, ExpiresAt: end})
	if err != nil {
		return Result{}, fmt.Errorf("rate limit %s: %w", key, err)
	}
	return result(int(n), limit, end), nil
}

// Peek reports the current window's count for key without counting a hit.
func (l *Limiter) Peek(ctx context.Context, key string, limit int, window time.Duration) (Result, error) {
	start, end := l.window(window)
	n, err := l.q.GetRateLimit(ctx, l.db, store.GetRateLimitParams{Key: key, WindowStart: start})
	if err != nil {
		return Result{}, fmt.Errorf("rate limit %s: %w", key, err)
	}
	// The next hit must still fit.
	r := result(int(n)+1, limit, end)
	r.Count = int(n)
	r.Remaining = max(limit-int(n), 0)
	return r, nil
}

// Reset forgets every window of key (a successful login clears its failures).
func (l *Limiter) Reset(ctx context.Context, key string) error {
	if err := l.q.ResetRateLimit(ctx, l.db, key); err != nil {
		return fmt.Errorf("reset rate limit %s: %w", key, err)
	}
	return nil
}

func (l *Limiter) window(length time.Duration) (start, end time.Time) {
	start = l.now().UTC().Truncate(length)
	return start, start.Add(length)
}

func result(count, limit int, end time.Time) Result {
	return Result{Limit: limit, Count: count, Remaining: max(limit-count, 0), Reset: end, Allowed: count <= limit}
}
