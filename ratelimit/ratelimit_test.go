package ratelimit_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/shardform/shardform/ratelimit"
	"github.com/shardform/shardform/store/storetest"
)

func TestLimiter(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := storetest.NewPool(t)
	now := time.Date(2026, 1, 1, 12, 0, 30, 0, time.UTC)
	clock := func() time.Time { return now }
	l := ratelimit.New(pool, clock)
	// Two limiters on one database stand for two API processes.
	other := ratelimit.New(pool, clock)

	for i := 1; i <= 3; i++ {
		lim := l
		if i == 2 {
			lim = other
		}
		r, err := lim.Hit(ctx, "k", 3, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if !r.Allowed || r.Count != i || r.Remaining != 3-i || !r.Reset.Equal(time.Date(2026, 1, 1, 12, 1, 0, 0, time.UTC)) {
			t.Fatalf("hit %d: %+v", i, r)
		}
	}
	r, err := l.Hit(ctx, "k", 3, time.Minute)
	if err != nil || r.Allowed || r.Remaining != 0 {
		t.Fatalf("4th hit %+v %v", r, err)
	}
	if got := r.RetryAfter(now); got != 30*time.Second {
		t.Errorf("RetryAfter = %v, want 30s", got)
	}
	p, err := l.Peek(ctx, "k", 3, time.Minute)
	if err != nil || p.Allowed || p.Count != 4 {
		t.Fatalf("peek %+v %v", p, err)
	}
	// Another key is independent; the next window starts over.
	if r, _ := l.Hit(ctx, "other", 3, time.Minute); !r.Allowed || r.Count != 1 {
		t.Errorf("other key %+v", r)
	}
	now = now.Add(time.Minute)
	if r, _ := l.Hit(ctx, "k", 3, time.Minute); !r.Allowed || r.Count != 1 {
		t.Errorf("next window %+v", r)
	}
	if err := l.Reset(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if p, _ := l.Peek(ctx, "k", 3, time.Minute); p.Count != 0 || !p.Allowed {
		t.Errorf("after reset %+v", p)
	}
}

// TestLimiterConcurrent: concurrent hits (combined into batches, from two
// limiters standing for two API processes) are each counted once: every
// hit of a key sees a distinct count, exactly limit of them are allowed,
// and the stored counter holds them all.
func TestLimiterConcurrent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := storetest.NewPool(t)
	clock := func() time.Time { return time.Date(2026, 1, 1, 12, 0, 30, 0, time.UTC) }
	limiters := []*ratelimit.Limiter{ratelimit.New(pool, clock), ratelimit.New(pool, clock)}
	tests := []struct {
		key   string
		hits  int
		limit int
	}{
		{"busy", 300, 200},
		{"quiet", 40, 100},
		{"over", 120, 10},
	}
	type res struct {
		key string
		r   ratelimit.Result
		err error
	}
	out := make(chan res, 500)
	var wg sync.WaitGroup
	for _, tt := range tests {
		for i := range tt.hits {
			wg.Go(func() {
				r, err := limiters[i%2].Hit(ctx, tt.key, tt.limit, time.Minute)
				out <- res{tt.key, r, err}
			})
		}
	}
	wg.Wait()
	close(out)
	seen := map[string]map[int]bool{}
	allowed := map[string]int{}
	for r := range out {
		if r.err != nil {
			t.Fatal(r.err)
		}
		if seen[r.key] == nil {
			seen[r.key] = map[int]bool{}
		}
		if seen[r.key][r.r.Count] {
			t.Errorf("%s: count %d seen twice", r.key, r.r.Count)
		}
		seen[r.key][r.r.Count] = true
		if r.r.Allowed {
			allowed[r.key]++
		}
	}
	for _, tt := range tests {
		if len(seen[tt.key]) != tt.hits || !seen[tt.key][1] || !seen[tt.key][tt.hits] {
			t.Errorf("%s: %d distinct counts, want 1..%d", tt.key, len(seen[tt.key]), tt.hits)
		}
		if want := min(tt.hits, tt.limit); allowed[tt.key] != want {
			t.Errorf("%s: %d allowed, want %d", tt.key, allowed[tt.key], want)
		}
		if p, err := limiters[0].Peek(ctx, tt.key, tt.limit, time.Minute); err != nil || p.Count != tt.hits {
			t.Errorf("%s: stored count %d (%v), want %d", tt.key, p.Count, err, tt.hits)
		}
	}
}
