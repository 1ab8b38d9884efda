package batch

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// waitPending waits until n calls wait for the next batch.
func waitPending[In, Out any](t *testing.T, b *Combiner[In, Out], n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; {
		b.mu.Lock()
		got := len(b.pending)
		b.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d calls pending, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestCombiner: calls arriving while a batch runs share the next one (up to
// max per batch), every call gets its own result, and a failed or
// panicking batch fails exactly its own calls.
func TestCombiner(t *testing.T) {
	boom := errors.New("database down")
	tests := []struct {
		name      string
		max       int
		waiting   int                     // calls arriving while the first batch runs
		fail      func(batch []int) error // the result of the second batch and later
		wantSizes []int                   // batch sizes, in order
		wantErr   func(in int) error      // per input; nil: its double
	}{
		{"combined", 128, 20, nil, []int{1, 20}, nil},
		{"at most max", 8, 20, nil, []int{1, 8, 8, 4}, nil},
		{"failed batch", 128, 5, func([]int) error { return boom }, []int{1, 5}, func(in int) error {
			if in == 0 {
				return nil
			}
			return boom
		}},
		{"panicking batch", 128, 5, func([]int) error { panic("bug") }, []int{1, 5}, func(in int) error {
			if in == 0 {
				return nil
			}
			return errors.New("batch failed: bug")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var (
				mu      sync.Mutex
				sizes   []int
				release = make(chan struct{})
			)
			var b *Combiner[int, int]
			b = New(tt.max, func(ctx context.Context, in []int) ([]int, error) {
				mu.Lock()
				sizes = append(sizes, len(in))
				first := len(sizes) == 1
				mu.Unlock()
				if first {
					<-release
				} else if tt.fail != nil {
					if err := tt.fail(in); err != nil {
						return nil, err
					}
				}
				out := make([]int, len(in))
				for i, v := range in {
					out[i] = 2 * v
				}
				return out, nil
			})
			type result struct {
				in, out int
				err     error
			}
			results := make(chan result, tt.waiting+1)
			call := func(in int) {
				defer func() {
					if p := recover(); p != nil {
						results <- result{in: in, err: fmt.Errorf("batch failed: %v", p)}
					}
				}()
				out, err := b.Do(context.Background(), in)
				results <- result{in, out, err}
			}
			go call(0)
			waitPending(t, b, 0) // the first call leads and blocks in run
			for deadline := time.Now().Add(5 * time.Second); ; {
				mu.Lock()
				started := len(sizes) == 1
				mu.Unlock()
				if started {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("the first batch did not start")
				}
				time.Sleep(time.Millisecond)
			}
			for i := 1; i <= tt.waiting; i++ {
				go call(i)
			}
			waitPending(t, b, tt.waiting)
			close(release)
			for range tt.waiting + 1 {
				r := <-results
				var want error
				if tt.wantErr != nil {
					want = tt.wantErr(r.in)
				}
				switch {
				case want == nil && (r.err != nil || r.out != 2*r.in):
					t.Errorf("call %d: %d, %v; want %d", r.in, r.out, r.err, 2*r.in)
				case want != nil && (r.err == nil || r.err.Error() != want.Error()):
					t.Errorf("call %d: error %v, want %v", r.in, r.err, want)
				}
			}
			mu.Lock()
			if fmt.Sprint(sizes) != fmt.Sprint(tt.wantSizes) {
				t.Errorf("batch sizes %v, want %v", sizes, tt.wantSizes)
			}
			mu.Unlock()
			// Idle again: the next call leads a batch of its own at once.
			if tt.fail == nil {
				if out, err := b.Do(context.Background(), 100); err != nil || out != 200 {
					t.Errorf("a call after the others: %d, %v", out, err)
				}
			}
		})
	}
}
