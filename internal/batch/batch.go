// Package batch combines concurrent calls into batches: many callers share
// one statement, one round trip and one commit.
package batch

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Timeout bounds one batch's work. A batch runs detached from the context
// of the call that leads it, so one caller giving up does not fail the
// others.
const Timeout = 10 * time.Second

// Combiner runs calls in batches, one batch at a time: a call that finds no
// batch running runs one at once with every call waiting at that moment
// (itself first); calls that arrive meanwhile wait, and the first of them
// leads the next batch. Alone, a call runs immediately; under load, many
// calls share one batch. It is safe for concurrent use.
type Combiner[In, Out any] struct {
	max int // most calls per batch
	// run does one batch; it returns one result per input, in order, or an
	// error for the whole batch.
	run func(ctx context.Context, in []In) ([]Out, error)

	mu      sync.Mutex
	pending []*combined[In, Out]
	busy    bool // a batch is running
}

type combined[In, Out any] struct {
	in   In
	out  Out
	err  error
	done chan struct{} // closed when out and err are set
	lead chan struct{} // closed when this call is to run the next batch
}

// New returns a Combiner that runs at most maxBatch calls (at least one)
// per batch through run, which returns one result per input, in order, or
// an error for the whole batch.
func New[In, Out any](maxBatch int, run func(ctx context.Context, in []In) ([]Out, error)) *Combiner[In, Out] {
	return &Combiner[In, Out]{max: max(maxBatch, 1), run: run}
}

// Do runs in with the next batch and returns its result.
func (b *Combiner[In, Out]) Do(ctx context.Context, in In) (Out, error) {
	c := &combined[In, Out]{in: in, done: make(chan struct{}), lead: make(chan struct{})}
	b.mu.Lock()
	b.pending = append(b.pending, c)
	if b.busy {
		b.mu.Unlock()
		// A follower does not give up on ctx: it is in a batch, or will
		// lead one, and batches are short (Timeout).
		select {
		case <-c.done:
			return c.out, c.err
		case <-c.lead:
		}
	} else {
		b.busy = true
		b.mu.Unlock()
	}
	b.lead(ctx)
	<-c.done
	return c.out, c.err
}

// lead runs the next batch (its first call is the caller's), then hands the
// lead to the first call still waiting, if any.
func (b *Combiner[In, Out]) lead(ctx context.Context) {
	b.mu.Lock()
	n := min(len(b.pending), b.max)
	batch := make([]*combined[In, Out], n)
	copy(batch, b.pending)
	b.pending = append(b.pending[:0], b.pending[n:]...)
	b.mu.Unlock()

	defer func() {
		// Whatever happened (even a panic in run), every call of the batch
		// gets an answer and the next batch a leader.
		p := recover()
		for _, c := range batch {
			select {
			case <-c.done:
			default:
				c.err = fmt.Errorf("batch failed: %v", p)
				close(c.done)
			}
		}
		b.mu.Lock()
		if len(b.pending) > 0 {
			close(b.pending[0].lead)
		} else {
			b.busy = false
		}
		b.mu.Unlock()
		if p != nil {
			panic(p)
		}
	}()

	in := make([]In, len(batch))
	for i, c := range batch {
		in[i] = c.in
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), Timeout)
	defer cancel()
	out, err := b.run(ctx, in)
	if err == nil && len(out) != len(in) {
		err = fmt.Errorf("batch of %d returned %d results", len(in), len(out))
	}
	for i, c := range batch {
		if err != nil {
			c.err = err
		} else {
			c.out = out[i]
		}
		close(c.done)
	}
}
