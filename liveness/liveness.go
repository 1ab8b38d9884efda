// Package liveness proves that a worker is alive while it carries out a
// job, by session-level Postgres advisory locks: each worker process keeps
// one connection (its liveness session) in which every piece of work it is
// doing (a Terraform run, a drain) holds a lock of its own name. When the
// process dies, however it dies, Postgres ends the session and the locks
// go with it; a rescuer in any worker process then finds work whose lock
// it can take (Free) and makes its job available again at once, instead
// of waiting for River's job timeout. Should the session be lost while the
// process lives (a network cut, Postgres restarted), the process stops the
// work it held: another worker may already be doing it again.
package liveness

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrLost is the cause given to a piece of work's context when its worker
// lost the Postgres session that proves it alive.
var ErrLost = errors.New("the worker lost its liveness session with Postgres: the work is stopped (another worker retries it)")

// ErrHeld: another live session holds the lock (a second job for the same
// work).
var ErrHeld = errors.New("held by another live worker")

// PingEvery is how often the liveness session is checked: a process that
// lost its session while alive knows within about twice this (a ping and
// its own timeout).
const PingEvery = 2 * time.Second

// Session is one worker process's liveness session.
type Session struct {
	config func() *pgx.ConnConfig
	log    *slog.Logger

	mu   sync.Mutex
	conn *pgx.Conn
	held map[string]context.CancelCauseFunc
	stop context.CancelFunc // stops the pinger; nil while no session is open
}

// New builds a session that opens its connection with config when first
// needed.
func New(config func() *pgx.ConnConfig, log *slog.Logger) *Session {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Session{config: config, log: log, held: map[string]context.CancelCauseFunc{}}
}

// Config is the settings of conn for a connection of its own, named for
// pg_stat_activity.
func Config(conn *pgx.ConnConfig, applicationName string) *pgx.ConnConfig {
	cfg := conn.Copy()
	params := make(map[string]string, len(cfg.RuntimeParams)+1)
	for k, v := range cfg.RuntimeParams {
		params[k] = v
	}
	params["application_name"] = applicationName
	cfg.RuntimeParams = params
	return cfg
}

// Free reports whether no session holds the lock name (its holder is
// gone); when free, the lock is taken for db's transaction only, so no
// new holder takes it until the caller has acted on the answer.
func Free(ctx context.Context, db interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, name string) (bool, error) {
	var free bool
	err := db.QueryRow(ctx, "SELECT pg_try_advisory_xact_lock(hashtextextended($1::text, 0))", name).Scan(&free)
	return free, err
}

// Close ends the session (the process is stopping; its work has ended).
func (l *Session) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn != nil {
		l.closeLocked(l.conn)
	}
}

// Hold takes the lock name in the liveness session (opening it first if
// needed); stop is called with ErrLost should the session be lost.
// release gives the lock back; it must be called once the work's outcome
// is committed. ErrHeld: another live session holds it.
func (l *Session) Hold(ctx context.Context, name string, stop context.CancelCauseFunc) (release func(), err error) {
	if err := ctx.Err(); err != nil {
		// Not the session's fault: a query cancelled now would close it
		// under the other work it holds.
		return nil, fmt.Errorf("take the liveness lock: %w", context.Cause(ctx))
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn == nil {
		conn, err := pgx.ConnectConfig(ctx, l.config())
		if err != nil {
			return nil, fmt.Errorf("open the liveness session: %w", err)
		}
		l.conn = conn
		pctx, cancel := context.WithCancel(context.Background())
		l.stop = cancel
		go l.ping(pctx, conn)
	}
	var ok bool
	if err := l.conn.QueryRow(ctx, "SELECT pg_try_advisory_lock(hashtextextended($1::text, 0))", name).Scan(&ok); err != nil {
		l.lostLocked(l.conn, err)
		return nil, fmt.Errorf("take the liveness lock: %w", err)
	}
	if !ok {
		return nil, ErrHeld
	}
	conn := l.conn
	l.held[name] = stop
	return func() { l.release(conn, name) }, nil
}

func (l *Session) release(conn *pgx.Conn, name string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn != conn {
		return // that session is gone, and the lock with it
	}
	delete(l.held, name)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_unlock(hashtextextended($1::text, 0))", name); err != nil {
		l.lostLocked(conn, err)
	}
	// The session stays open for the next piece of work: one idle
	// connection per worker process, and no connection set-up on a job's
	// path.
}

// ping checks the session every PingEvery until it closes.
func (l *Session) ping(ctx context.Context, conn *pgx.Conn) {
	t := time.NewTicker(PingEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		l.mu.Lock()
		if l.conn != conn {
			l.mu.Unlock()
			return
		}
		pctx, cancel := context.WithTimeout(ctx, PingEvery)
		err := conn.Ping(pctx)
		cancel()
		if err != nil && ctx.Err() == nil {
			l.lostLocked(conn, err)
		}
		l.mu.Unlock()
	}
}

// lostLocked stops all the work the session held: its locks are gone.
func (l *Session) lostLocked(conn *pgx.Conn, cause error) {
	if l.conn != conn {
		return
	}
	if len(l.held) > 0 {
		l.log.Error("liveness session with Postgres lost: stopping this worker's work", slog.Int("held", len(l.held)), slog.Any("error", cause))
	}
	for name, stop := range l.held {
		stop(ErrLost)
		delete(l.held, name)
	}
	l.closeLocked(conn)
}

func (l *Session) closeLocked(conn *pgx.Conn) {
	if l.stop != nil {
		l.stop()
		l.stop = nil
	}
	l.conn = nil
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = conn.Close(ctx)
}

// Rescue runs round every interval until ctx ends: the loop of each worker
// process's rescuers (runs, drains). round answers how soon it wants to
// run again, when sooner than interval (0: a whole interval); a failed
// round is handed to failed (unless ctx ended) and tried again after
// interval.
func Rescue(ctx context.Context, interval time.Duration, round func(context.Context) (time.Duration, error), failed func(error)) {
	t := time.NewTimer(interval)
	defer t.Stop()
	for {
		soon, err := round(ctx)
		if err != nil && ctx.Err() == nil {
			failed(err)
		}
		next := interval
		if soon > 0 {
			next = min(next, soon)
		}
		t.Reset(next)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
