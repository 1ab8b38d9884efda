// Package ratelimit counts requests in fixed windows stored in Postgres, so
// every API process enforces one shared limit.
package ratelimit

import (
	"context"
	"fmt"
	"time"

	"github.com/shardform/shardform/internal/batch"
	"github.com/shardform/shardform/store"
)

// Limiter counts hits per key and window. Concurrent hits are combined:
// one statement counts every hit waiting at that moment (see
// batch.Combiner), so a busy API token's requests do not queue one by one
// for its counter's row. Every hit is still counted and sees its own count.
type Limiter struct {
	db   store.DBTX
	q    *store.Queries
	now  func() time.Time
	hits *batch.Combiner[hit, int]
}

// hit is one counted request.
type hit struct {
	key        string
	start, end time.Time // the window
}

// maxBatch is the most hits counted by one statement.
const maxBatch = 256

// New returns a Limiter on db. now is the clock (time.Now in production).
func New(db store.DBTX, now func() time.Time) *Limiter {
	l := &Limiter{db: db, q: store.New(), now: now}
	l.hits = batch.New(maxBatch, l.count)
	return l
}

// count adds a batch of hits and returns each hit's count: the hits of one
// key and window are numbered in order up to the window's new total.
func (l *Limiter) count(ctx context.Context, hits []hit) ([]int, error) {
	type window struct {
		key   string
		start int64
	}
	n := map[window]int32{}
	var p store.HitRateLimitsParams
	for _, h := range hits {
		w := window{h.key, h.start.UnixMicro()}
		if n[w] == 0 {
			p.Keys = append(p.Keys, h.key)
			p.WindowStarts = append(p.WindowStarts, h.start)
			p.ExpiresAts = append(p.ExpiresAts, h.end)
		}
		n[w]++
	}
	for i, k := range p.Keys {
		p.Ns = append(p.Ns, n[window{k, p.WindowStarts[i].UnixMicro()}])
	}
	rows, err := l.q.HitRateLimits(ctx, l.db, p)
	if err != nil {
		return nil, err
	}
	// The first hit of a window in this batch sees total-n+1, the last total.
	next := make(map[window]int, len(rows))
	for _, r := range rows {
		w := window{r.Key, r.WindowStart.UnixMicro()}
		next[w] = int(r.Count-n[w]) + 1
	}
	out := make([]int, len(hits))
	for i, h := range hits {
		w := window{h.key, h.start.UnixMicro()}
		c, ok := next[w]
		if !ok {
			return nil, fmt.Errorf("no count returned for %s", h.key)
		}
		out[i] = c
		next[w] = c + 1
	}
	return out, nil
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
	n, err := l.hits.Do(ctx, hit{key: key, start: start, end: end})
	if err != nil {
		return Result{}, fmt.Errorf("rate limit %s: %w", key, err)
	}
	return result(n, limit, end), nil
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
