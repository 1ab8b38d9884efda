package provision

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// A running run proves it is alive by a session-level Postgres advisory
// lock: each worker process keeps one connection (its liveness session)
// in which every run it is working on holds the lock named
// runLockName(run id). When the process dies, however it dies, Postgres
// ends the session and the locks go with it; a rescuer in any worker
// process (RescueRuns) then finds a running run whose lock it can take and
// makes its job available again at once, instead of waiting for River's
// job timeout. Should the session be lost while the process lives (a
// network cut, Postgres restarted), the process stops the runs it held:
// another worker may already be running them again.

// ErrLivenessLost is the cause given to a run's context when its worker
// lost the Postgres session that proves the run alive.
var ErrLivenessLost = errors.New("the worker lost its liveness session with Postgres: the run is stopped (another worker retries it)")

// errRunHeld: another live session holds the run (a second job for it).
var errRunHeld = errors.New("the run is held by another live worker")

// livenessPing is how often the liveness session is checked.
const livenessPing = 2 * time.Second

func runLockName(id uuid.UUID) string { return "shardform-run:" + id.String() }

// liveness is one worker process's liveness session.
type liveness struct {
	config func() *pgx.ConnConfig
	log    *slog.Logger

	mu   sync.Mutex
	conn *pgx.Conn
	held map[uuid.UUID]context.CancelCauseFunc
	stop context.CancelFunc // stops the pinger; nil while no session is open
}

// close ends the session (the process is stopping; its runs have ended).
func (l *liveness) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn != nil {
		l.closeLocked(l.conn)
	}
}

func newLiveness(config func() *pgx.ConnConfig, log *slog.Logger) *liveness {
	return &liveness{config: config, log: log, held: map[uuid.UUID]context.CancelCauseFunc{}}
}

// hold takes run id's lock in the liveness session (opening it first if
// needed); stop is called should the session be lost. release gives the
// lock back; it must be called once the run's outcome is committed.
func (l *liveness) hold(ctx context.Context, id uuid.UUID, stop context.CancelCauseFunc) (release func(), err error) {
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
	if err := l.conn.QueryRow(ctx, "SELECT pg_try_advisory_lock(hashtextextended($1::text, 0))", runLockName(id)).Scan(&ok); err != nil {
		l.lostLocked(l.conn, err)
		return nil, fmt.Errorf("take the run's liveness lock: %w", err)
	}
	if !ok {
		return nil, errRunHeld
	}
	conn := l.conn
	l.held[id] = stop
	return func() { l.release(conn, id) }, nil
}

func (l *liveness) release(conn *pgx.Conn, id uuid.UUID) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn != conn {
		return // that session is gone, and the lock with it
	}
	delete(l.held, id)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_unlock(hashtextextended($1::text, 0))", runLockName(id)); err != nil {
		l.lostLocked(conn, err)
	}
	// The session stays open for the next run: one idle connection per
	// worker process, and no connection set-up on a run's path.
}

// ping checks the session every livenessPing until it closes.
func (l *liveness) ping(ctx context.Context, conn *pgx.Conn) {
	t := time.NewTicker(livenessPing)
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
		pctx, cancel := context.WithTimeout(ctx, livenessPing)
		err := conn.Ping(pctx)
		cancel()
		if err != nil && ctx.Err() == nil {
			l.lostLocked(conn, err)
		}
		l.mu.Unlock()
	}
}

// lostLocked stops every run the session held: their locks are gone.
func (l *liveness) lostLocked(conn *pgx.Conn, cause error) {
	if l.conn != conn {
		return
	}
	if len(l.held) > 0 {
		l.log.Error("liveness session with Postgres lost: stopping this worker's runs", slog.Int("runs", len(l.held)), slog.Any("error", cause))
	}
	for id, stop := range l.held {
		stop(ErrLivenessLost)
		delete(l.held, id)
	}
	l.closeLocked(conn)
}

func (l *liveness) closeLocked(conn *pgx.Conn) {
	if l.stop != nil {
		l.stop()
		l.stop = nil
	}
	l.conn = nil
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = conn.Close(ctx)
}
