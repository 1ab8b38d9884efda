package sshsign

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/riverqueue/river/rivertype"

	"github.com/shardform/shardform/domain"
	"github.com/shardform/shardform/store"
)

// Notification channels of the shared listener.
const (
	// channelSigned carries a signedNote: a job a waiting API request in
	// another process asked for has ended.
	channelSigned = "shardform_ssh_signed"
	// channelCA carries an organization id whose CA keys or policy changed.
	channelCA = "shardform_ssh_ca"
)

// Waiting for a job. The API request registers a waiter before it inserts
// the job and names it in the job's args (Reply). The worker answers after
// the transaction that records the certificate commits (never before: the
// certificate handed out is always the recorded one):
//   - in the same process, it hands the result to the waiter in memory;
//   - in another process, it sends a signedNote on channelSigned, which the
//     API process's one shared listener connection passes to the waiter, who
//     then reads the recorded certificate.
//
// A slow poll of the certificate row and the job state stays as the
// fallback (a missed notification, a listener reconnecting, a job River
// discarded), so the database remains the only thing processes must share.
const (
	pollFirst = 500 * time.Millisecond
	pollMax   = 2 * time.Second
	// listenerIdle closes the listener connection after this long with
	// nobody waiting; the next request opens it again.
	listenerIdle = 30 * time.Second
	// listenerRetry is the shortest pause between two listener connections.
	listenerRetry = time.Second
)

// signedNote is the payload on channelSigned.
type signedNote struct {
	Reply   string       `json:"reply"`
	Failure *signFailure `json:"failure,omitempty"`
}

// waitResult is what a waiter receives: the signed value (Signed or
// HostSigned) from a worker of this process, a refusal, or neither (look in
// the database).
type waitResult struct {
	value any
	err   error
}

// waiter is one API request waiting for its job.
type waiter struct {
	reply string
	ch    chan waitResult
}

// waiters are this process's waiting requests, by reply address, and its
// shared listener connection.
type waiters struct {
	instance string // this process's id: the prefix of its reply addresses

	mu        sync.Mutex
	byReply   map[string]*waiter
	seq       uint64
	listening bool
	started   time.Time
}

func newWaiters() waiters {
	return waiters{instance: uuid.NewString(), byReply: map[string]*waiter{}}
}

// register makes a waiter with a fresh reply address.
func (s *Service) register() *waiter {
	w := &s.waiters
	w.mu.Lock()
	defer w.mu.Unlock()
	w.seq++
	wt := &waiter{reply: w.instance + "/" + strconv.FormatUint(w.seq, 10), ch: make(chan waitResult, 1)}
	w.byReply[wt.reply] = wt
	return wt
}

func (s *Service) unregister(wt *waiter) {
	w := &s.waiters
	w.mu.Lock()
	delete(w.byReply, wt.reply)
	w.mu.Unlock()
}

// deliver hands res to the waiter of reply, if it still waits here.
func (s *Service) deliver(reply string, res waitResult) {
	w := &s.waiters
	w.mu.Lock()
	wt := w.byReply[reply]
	w.mu.Unlock()
	if wt == nil {
		return
	}
	select {
	case wt.ch <- res:
	default: // it already has something to look at
	}
}

// answer tells the waiting request of a job (reply) that the job ended with
// value or the refusal failure. Called after the job's outcome is final
// (the recording transaction committed, or the job is being cancelled).
func (s *Service) answer(ctx context.Context, reply string, value any, failure error) {
	switch {
	case reply == "":
	case strings.HasPrefix(reply, s.waiters.instance+"/"):
		s.deliver(reply, waitResult{value: value, err: failure})
	default:
		note := signedNote{Reply: reply}
		if failure != nil {
			note.Failure, _ = failureOf(failure)
		}
		payload, err := json.Marshal(note)
		if err == nil {
			err = s.q.NotifySSH(context.WithoutCancel(ctx), s.st.Pool, store.NotifySSHParams{Channel: channelSigned, Payload: string(payload)})
		}
		if err != nil {
			// The job's outcome stands and the waiter's poll finds it, a
			// little later: worth a line, not a failed job.
			s.log.WarnContext(ctx, "ssh: could not notify the waiting request; it will find the outcome by polling",
				slog.String("reply", reply), slog.Any("error", err))
		}
	}
}

// listen makes sure the shared listener runs (one connection per process,
// never one per request), for as long as the service lives.
func (s *Service) listen() {
	w := &s.waiters
	w.mu.Lock()
	defer w.mu.Unlock()
	// The pause between connections is real time, whatever the clock says.
	if w.listening || s.life.Err() != nil || time.Since(w.started) < listenerRetry {
		return
	}
	w.listening, w.started = true, time.Now()
	s.background.Add(1)
	go func() {
		defer s.background.Done()
		s.runListener(s.life)
	}()
}

// runListener runs the shared listener until ctx ends, or nobody has waited
// for listenerIdle, or its connection fails (the next request starts
// another).
func (s *Service) runListener(ctx context.Context) {
	defer func() {
		s.waiters.mu.Lock()
		s.waiters.listening = false
		s.waiters.mu.Unlock()
	}()
	conn, err := pgx.ConnectConfig(ctx, s.st.Pool.Config().ConnConfig)
	if err != nil {
		if ctx.Err() == nil {
			s.log.WarnContext(ctx, "ssh: listener cannot connect; waiting requests poll", slog.Any("error", err))
		}
		return
	}
	defer func() {
		// ctx may have ended: close within a bound of its own.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+channelSigned+"; LISTEN "+channelCA); err != nil {
		if ctx.Err() == nil {
			s.log.WarnContext(ctx, "ssh: LISTEN failed; waiting requests poll", slog.Any("error", err))
		}
		return
	}
	for {
		wctx, cancel := context.WithTimeout(ctx, listenerIdle)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return // the service's lifetime ended
			}
			if !pgconn.Timeout(err) || conn.IsClosed() {
				s.log.WarnContext(ctx, "ssh: listener connection lost; the next request reconnects", slog.Any("error", err))
				return
			}
			s.waiters.mu.Lock()
			idle := len(s.waiters.byReply) == 0
			s.waiters.mu.Unlock()
			if idle {
				return
			}
			continue
		}
		switch n.Channel {
		case channelCA:
			if org, err := uuid.Parse(n.Payload); err == nil {
				s.invalidate(org)
			}
		case channelSigned:
			var note signedNote
			if json.Unmarshal([]byte(n.Payload), &note) != nil {
				continue
			}
			res := waitResult{}
			if note.Failure != nil {
				if derr, ok := parseFailure(note.Failure.Error()); ok {
					res.err = derr
				}
			}
			s.deliver(note.Reply, res)
		}
	}
}

// waitForJob waits for the outcome of job jobID until the wait that began
// at start (real time) has lasted s.timeout: a value or refusal handed to
// wt, or, on a notification or a poll, the recorded certificate (fetch
// answers pgx.ErrNoRows until it exists) or the job's cancelled or
// discarded state.
func waitForJob[T any](ctx context.Context, s *Service, wt *waiter, jobID int64, start time.Time, fetch func(context.Context) (T, error)) (T, error) {
	var zero T
	defer s.unregister(wt)
	s.listen()
	check := func() (T, bool, error) {
		out, err := fetch(ctx)
		if err == nil {
			return out, true, nil
		}
		if !store.IsNoRows(err) {
			return zero, true, fmt.Errorf("sign certificate: %w", err)
		}
		job, err := s.queue.JobGet(ctx, jobID)
		if err != nil {
			return zero, true, fmt.Errorf("sign certificate: job %d: %w", jobID, err)
		}
		if job.State == rivertype.JobStateCancelled || job.State == rivertype.JobStateDiscarded {
			if n := len(job.Errors); n > 0 {
				if derr, ok := parseFailure(job.Errors[n-1].Error); ok {
					return zero, true, derr
				}
				return zero, true, fmt.Errorf("sign certificate: job %d %s: %s", jobID, job.State, job.Errors[n-1].Error)
			}
			return zero, true, fmt.Errorf("sign certificate: job %d %s", jobID, job.State)
		}
		return zero, false, nil
	}
	poll := pollFirst
	pollTimer := time.NewTimer(poll)
	defer pollTimer.Stop()
	expire := time.NewTimer(s.timeout - time.Since(start))
	defer expire.Stop()
	for {
		select {
		case res := <-wt.ch:
			if res.err != nil {
				return zero, res.err
			}
			if v, ok := res.value.(T); ok {
				return v, nil
			}
			if out, done, err := check(); done {
				return out, err
			}
		case <-pollTimer.C:
			if out, done, err := check(); done {
				return out, err
			}
			poll = min(2*poll, pollMax)
			pollTimer.Reset(poll)
		case <-expire.C:
			if out, done, err := check(); done {
				return out, err
			}
			return zero, fmt.Errorf("sign certificate: job %d: %w", jobID,
				domain.Unavailable("no SSH signing worker answered within %s; try again later", s.timeout))
		case <-ctx.Done():
			return zero, ctx.Err()
		}
	}
}

// IsTimeout reports whether err means no worker answered in time.
func IsTimeout(err error) bool { return errors.Is(err, domain.ErrUnavailable) }
