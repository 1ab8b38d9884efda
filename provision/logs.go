package provision

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/shardform/shardform/domain"
	"github.com/shardform/shardform/store"
)

// LogLine is one stored chunk of Terraform output.
type LogLine struct {
	ID        int64     `json:"id"`
	Operation string    `json:"operation"`
	Text      string    `json:"text"`
	CreatedAt time.Time `json:"created_at"`
}

// LogsPageSize is the most chunks one Logs call returns (the LIMIT of
// store.ListProvisionLogs): a full page means more may follow at once.
const LogsPageSize = 1000

// Logs returns the output of every run of a request after log id afterID
// (0: from the start), at most LogsPageSize chunks, and whether a run is
// still going.
func (s *Service) Logs(ctx context.Context, p *domain.Principal, id uuid.UUID, afterID int64) ([]LogLine, bool, error) {
	r, err := s.Get(ctx, p, id)
	if err != nil {
		return nil, false, err
	}
	rows, err := s.q.ListProvisionLogs(ctx, s.st.Pool, store.ListProvisionLogsParams{OrganizationID: p.OrgID, ProvisionID: id, AfterID: afterID})
	if err != nil {
		return nil, false, fmt.Errorf("logs of %s: %w", id, err)
	}
	out := make([]LogLine, len(rows))
	for i, l := range rows {
		out[i] = LogLine{ID: l.ID, Operation: l.Operation, Text: l.Chunk, CreatedAt: l.CreatedAt}
	}
	return out, Running(r.Status), nil
}

// Running reports whether a job is working on a request in this status.
func Running(status string) bool {
	return status == StatusPlanning || status == StatusApplying || status == StatusDestroying
}

// FollowLogs subscribes to the changes of request id: wake receives a value
// whenever, in any process, a chunk of its output is stored or its status
// changes (signals coalesce: one value may stand for many changes). It holds
// a value at once, so a Logs call made after the first wake misses nothing.
// stop must be called when the follower leaves.
//
// The notifications come from one LISTEN connection per Service (see
// migrations/00015_provision_log_notify.sql), opened with the first follower
// and closed with the last; while it reconnects after an error, followers
// are woken when it is back, so nothing written meanwhile is missed.
func (s *Service) FollowLogs(ctx context.Context, p *domain.Principal, id uuid.UUID) (wake <-chan struct{}, stop func(), err error) {
	if err := need(p, domain.PermProvisionRead); err != nil {
		return nil, nil, err
	}
	sub := s.feed.subscribe(id)
	return sub.ch, func() { s.feed.unsubscribe(sub) }, nil
}

// channelLogs is the notification channel of migration 00015; its payload
// is a provision request id.
const channelLogs = "shardform_provision_logs"

// feedRetry is the pause before the listener connects again after an error.
const feedRetry = time.Second

// feedApplicationName names the listener's connection in pg_stat_activity.
const feedApplicationName = "shardform provision log listener"

// logFeed fans the notifications of one shared LISTEN connection out to this
// process's log followers.
type logFeed struct {
	log    *slog.Logger
	config func() *pgx.ConnConfig // the listener connection's settings
	retry  time.Duration

	mu    sync.Mutex
	subs  map[uuid.UUID]map[*logSub]struct{}
	count int
	stop  context.CancelFunc // stops the running listener; nil when none runs
}

// logSub is one follower.
type logSub struct {
	id uuid.UUID
	ch chan struct{} // capacity 1: pending wake-ups coalesce
}

func newLogFeed(log *slog.Logger, config func() *pgx.ConnConfig) *logFeed {
	return &logFeed{log: log, config: config, retry: feedRetry, subs: map[uuid.UUID]map[*logSub]struct{}{}}
}

func (f *logFeed) subscribe(id uuid.UUID) *logSub {
	sub := &logSub{id: id, ch: make(chan struct{}, 1)}
	sub.ch <- struct{}{}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.subs[id] == nil {
		f.subs[id] = map[*logSub]struct{}{}
	}
	f.subs[id][sub] = struct{}{}
	f.count++
	if f.stop == nil {
		ctx, cancel := context.WithCancel(context.Background())
		f.stop = cancel
		go f.listen(ctx)
	}
	return sub
}

func (f *logFeed) unsubscribe(sub *logSub) {
	f.mu.Lock()
	defer f.mu.Unlock()
	subs := f.subs[sub.id]
	if _, ok := subs[sub]; !ok {
		return // stopped twice
	}
	delete(subs, sub)
	if len(subs) == 0 {
		delete(f.subs, sub.id)
	}
	f.count--
	if f.count == 0 && f.stop != nil {
		f.stop()
		f.stop = nil
	}
}

// wake signals the followers of id, or every follower for uuid.Nil.
func (f *logFeed) wake(id uuid.UUID) {
	f.mu.Lock()
	defer f.mu.Unlock()
	signal := func(subs map[*logSub]struct{}) {
		for sub := range subs {
			select {
			case sub.ch <- struct{}{}:
			default: // a wake-up is pending already
			}
		}
	}
	if id != uuid.Nil {
		signal(f.subs[id])
		return
	}
	for _, subs := range f.subs {
		signal(subs)
	}
}

// listen holds the LISTEN connection until ctx is cancelled (the last
// follower left), connecting again after an error.
func (f *logFeed) listen(ctx context.Context) {
	for {
		err := f.session(ctx)
		if ctx.Err() != nil {
			return
		}
		f.log.ErrorContext(ctx, "provision log listener failed: followers wait for its reconnection",
			slog.String("channel", channelLogs), slog.Any("error", err), slog.Duration("retry_in", f.retry))
		select {
		case <-ctx.Done():
			return
		case <-time.After(f.retry):
		}
	}
}

// session is one listener connection: connect, LISTEN, wake every follower
// (they may have missed notifications while it was not listening), then
// pass each notification on.
func (f *logFeed) session(ctx context.Context) error {
	cfg := f.config()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = conn.Close(closeCtx) // the session ends either way; Close reports only the goodbye
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+channelLogs); err != nil {
		return fmt.Errorf("LISTEN %s: %w", channelLogs, err)
	}
	f.wake(uuid.Nil)
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return fmt.Errorf("wait for notification: %w", err)
		}
		id, err := uuid.Parse(n.Payload)
		if err != nil {
			f.log.WarnContext(ctx, "provision log listener: notification without a request id", slog.String("payload", n.Payload))
			continue
		}
		f.wake(id)
	}
}

// livenessApplicationName names the liveness session in pg_stat_activity.
const livenessApplicationName = "shardform run liveness"

// sessionConfig is the pool's connection settings for a connection of its
// own, named for pg_stat_activity.
func (s *Service) sessionConfig(name string) *pgx.ConnConfig {
	cfg := s.st.Pool.Config().ConnConfig.Copy()
	params := make(map[string]string, len(cfg.RuntimeParams)+1)
	for k, v := range cfg.RuntimeParams {
		params[k] = v
	}
	params["application_name"] = name
	cfg.RuntimeParams = params
	return cfg
}
