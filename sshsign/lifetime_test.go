package sshsign

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shardform/shardform/seal"
	"github.com/shardform/shardform/sshca"
	"github.com/shardform/shardform/store"
	"github.com/shardform/shardform/store/storetest"
)

// newService builds a service on pool with opts.
func newService(t *testing.T, pool *pgxpool.Pool, opts Options) *Service {
	t.Helper()
	sealer, err := seal.New(bytes.Repeat([]byte{7}, seal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	svc, err := New(store.NewStore(pool), sshca.NewVault(sealer), opts)
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// listeners counts the connections of this test's database that listen
// (their last statement is the listener's LISTEN).
func listeners(t *testing.T, pool *pgxpool.Pool) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity
		WHERE datname = current_database() AND query LIKE 'LISTEN `+channelSigned+`%'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func (s *Service) listening() bool {
	s.waiters.mu.Lock()
	defer s.waiters.mu.Unlock()
	return s.waiters.listening
}

// TestListenerLifetime: the shared listener lives no longer than the
// service: it closes its connection when Options.Context ends or on Close,
// even while a request waits (it used to run on context.Background() until
// nobody waited), and no new one starts afterwards.
func TestListenerLifetime(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		end  func(t *testing.T, cancel context.CancelFunc, s *Service)
	}{
		{"context ends", func(_ *testing.T, cancel context.CancelFunc, _ *Service) { cancel() }},
		{"close", func(t *testing.T, _ context.CancelFunc, s *Service) {
			closed := make(chan struct{})
			go func() {
				s.Close()
				close(closed)
			}()
			select {
			case <-closed:
			case <-time.After(10 * time.Second):
				// Bounds a failure only: Close waits for the listener.
				t.Fatal("Close did not return within 10 s: the listener outlives the service")
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pool := storetest.NewPool(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			svc := newService(t, pool, Options{Context: ctx})
			// Before the database is dropped, which a live listener blocks.
			t.Cleanup(svc.Close)
			wt := svc.register() // a request waits: the listener must not idle out
			defer svc.unregister(wt)
			svc.listen()
			eventually(t, "the listener connects", func() bool { return listeners(t, pool) == 1 })

			tt.end(t, cancel, svc)
			eventually(t, "the listener closes", func() bool { return !svc.listening() && listeners(t, pool) == 0 })

			// No new listener once the service's life is over.
			svc.waiters.mu.Lock()
			svc.waiters.started = time.Time{} // past the pause between connections
			svc.waiters.mu.Unlock()
			svc.listen()
			if svc.listening() {
				t.Error("a listener started after the service's end")
			}
			svc.Close() // waits for nothing, and may be called again
		})
	}
}

// TestNotifyFailureLogged: a worker whose notification to a waiting
// request in another process fails says so in the injected log (it was
// dropped without a word); the job's outcome stands.
func TestNotifyFailureLogged(t *testing.T) {
	t.Parallel()
	db := storetest.NewPool(t)
	pool, err := pgxpool.New(context.Background(), db.Config().ConnString())
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	svc := newService(t, pool, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	defer svc.Close()
	pool.Close() // every statement now fails

	svc.answer(context.Background(), "another-process/7", Signed{}, nil)
	out := logs.String()
	if !strings.Contains(out, "level=WARN") || !strings.Contains(out, "could not notify the waiting request") ||
		!strings.Contains(out, "reply=another-process/7") || !strings.Contains(out, "closed pool") {
		t.Errorf("log %q, want a warning naming the reply and the error", out)
	}
}
