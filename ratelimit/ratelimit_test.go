package ratelimit_test

import (
	"context"
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
