package nodeops

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/shardform/shardform/audit"
	"github.com/shardform/shardform/domain"
	"github.com/shardform/shardform/providers"
	"github.com/shardform/shardform/store"
)

func pgInt8(v int64) pgtype.Int8 { return pgtype.Int8{Int64: v, Valid: true} }

// Timeout is the longest a node_action job may take: a graceful stop's
// timeout, a power-off and the polling around them.
func (s *Service) Timeout() time.Duration { return s.stopTimeout + 5*time.Minute }

// Run carries out a node_action job: it marks the action running, calls
// the cloud, and records the outcome and the node's power state in the
// transaction that completes the job. A cloud error that may pass is
// returned (River retries the job) until the last attempt; one that will
// not (a refused credential, a server that is gone, a state that does not
// allow the action) fails the action at once.
func (s *Service) Run(ctx context.Context, job Job) error {
	args := job.Args
	a, err := s.q.StartNodeAction(ctx, s.st.Pool, store.StartNodeActionParams{OrganizationID: args.OrganizationID, ID: args.ActionID, Attempt: int32(job.Attempt)})
	if store.IsNoRows(err) {
		// Finished already (a retried job whose outcome was recorded), or
		// gone with its node.
		return s.complete(ctx, job, nil)
	}
	if err != nil {
		return fmt.Errorf("start action %s: %w", args.ActionID, err)
	}
	log := s.log.With(slog.String("action_id", a.ID.String()), slog.String("node_id", a.NodeID.String()),
		slog.String("organization_id", a.OrganizationID.String()), slog.String("kind", a.Kind))
	// The heartbeat proves this worker alive while it works: without it
	// for WorkerLostAfter, the action is ended failed ("worker lost").
	stopBeat := s.heartbeat(ctx, a, log)
	defer stopBeat()
	n, err := s.node(ctx, s.st.Pool, args.OrganizationID, args.NodeID)
	if errors.Is(err, domain.ErrNotFound) {
		return s.complete(ctx, job, nil) // the node was deleted: its actions went with it
	}
	if err != nil {
		return err
	}
	out, err := s.carryOut(ctx, n, a)
	state := out.state
	if err != nil {
		final := job.Attempt >= job.MaxAttempts || errors.Is(err, providers.ErrCredentialRefused) ||
			errors.Is(err, providers.ErrMachineNotFound) || errors.Is(err, providers.ErrIncorrectState) ||
			errors.Is(err, domain.ErrUnprocessable)
		if ctx.Err() == nil && !final {
			log.WarnContext(ctx, "power action failed: retrying", slog.Int("attempt", job.Attempt), slog.Any("error", err))
			if nerr := s.q.NoteNodeActionError(ctx, s.st.Pool, store.NoteNodeActionErrorParams{OrganizationID: a.OrganizationID, ID: a.ID,
				Error: domain.Truncate(err.Error(), 2000)}); nerr != nil {
				log.ErrorContext(ctx, "could not note a power action's error", slog.Any("error", nerr))
			}
			return err
		}
		if ctx.Err() != nil && job.Attempt < job.MaxAttempts {
			return err // timed out or shutting down: River retries the job
		}
		log.WarnContext(ctx, "power action failed", slog.Int("attempt", job.Attempt), slog.Any("error", err))
		// The outcome is recorded even when the job's time ran out.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		// Record what the cloud holds now, if it can say, so the record
		// and the cloud do not disagree after a half-done action.
		state = ""
		var addr addresses
		if st, rerr := s.read(fctx, n); rerr == nil {
			state = recorded(st.State)
			if state == recordedRunning {
				addr = addresses{ipv4: st.IPv4, ipv6: st.IPv6}
			}
		}
		return s.finish(fctx, job, n, StatusFailed, domain.Truncate(err.Error(), 2000), state, addr)
	}
	log.InfoContext(ctx, "power action succeeded", slog.Bool("powered_off", out.hard))
	if out.addrUnread {
		// The addresses could not be read: a node_addresses job (River
		// retries it with backoff) records them, in the same commit.
		return s.complete(ctx, job, func(tx pgx.Tx) error {
			if err := s.finishTx(ctx, tx, n, job.Args.ActionID, StatusSucceeded, "", state, out.addr); err != nil {
				return err
			}
			return s.queueAddresses(ctx, tx, n)
		})
	}
	return s.finish(ctx, job, n, StatusSucceeded, "", state, out.addr)
}

// heartbeat marks the action's worker alive every fifth of the
// lost-worker bound until the returned stop is called.
func (s *Service) heartbeat(ctx context.Context, a store.NodeAction, log *slog.Logger) (stop func()) {
	bctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(s.lostAfter / 5)
		defer t.Stop()
		for {
			select {
			case <-bctx.Done():
				return
			case <-t.C:
				if err := s.q.HeartbeatNodeAction(bctx, s.st.Pool, store.HeartbeatNodeActionParams{OrganizationID: a.OrganizationID, ID: a.ID}); err != nil && bctx.Err() == nil {
					log.WarnContext(bctx, "could not record a power action's heartbeat", slog.Any("error", err))
				}
			}
		}
	}()
	return func() { cancel(); <-done }
}

// addresses are a running machine's public addresses as its cloud reports
// them; an empty one is unknown (kept as recorded), never a removal.
type addresses struct {
	ipv4, ipv6 string
}

// finish records the action's outcome, the node's power state ("":
// unchanged) and addresses (with their auto-DNS update) and completes the
// job, in one transaction.
func (s *Service) finish(ctx context.Context, job Job, n store.Node, status, msg, state string, addr addresses) error {
	return s.complete(ctx, job, func(tx pgx.Tx) error {
		return s.finishTx(ctx, tx, n, job.Args.ActionID, status, msg, state, addr)
	})
}

func (s *Service) finishTx(ctx context.Context, tx pgx.Tx, n store.Node, actionID uuid.UUID, status, msg, state string, addr addresses) error {
	if _, err := s.q.FinishNodeAction(ctx, tx, store.FinishNodeActionParams{OrganizationID: n.OrganizationID, ID: actionID, Status: status, Error: msg}); err != nil && !store.IsNoRows(err) {
		return fmt.Errorf("record the outcome of action %s: %w", actionID, err)
	}
	return s.record(ctx, tx, n, state, addr)
}

// record sets the node's power state when given and different, and its
// addresses when the cloud reported ones that differ: then, in tx, an
// audit entry (node.address) and the update of the node's auto-DNS
// records (their dns_sync jobs inserted in tx).
func (s *Service) record(ctx context.Context, tx pgx.Tx, n store.Node, state string, addr addresses) error {
	if state != "" && state != n.PowerState {
		if err := s.q.SetNodePowerState(ctx, tx, store.SetNodePowerStateParams{OrganizationID: n.OrganizationID, ID: n.ID, PowerState: state}); err != nil {
			return fmt.Errorf("record the power state of node %s: %w", n.ID, err)
		}
	}
	ipv4, ipv6 := n.Ipv4, n.Ipv6
	if addr.ipv4 != "" {
		ipv4 = addr.ipv4
	}
	if addr.ipv6 != "" {
		ipv6 = addr.ipv6
	}
	if ipv4 == n.Ipv4 && ipv6 == n.Ipv6 {
		return nil
	}
	upd, err := s.q.SetNodeAddresses(ctx, tx, store.SetNodeAddressesParams{OrganizationID: n.OrganizationID, ID: n.ID, Ipv4: ipv4, Ipv6: ipv6})
	if store.IsNoRows(err) {
		return nil // recorded already (by a concurrent status read), or the node is gone
	}
	if err != nil {
		return fmt.Errorf("record the addresses of node %s: %w", n.ID, err)
	}
	change := fmt.Sprintf("node %s (%s): ipv4 %q -> %q, ipv6 %q -> %q", n.ID, n.Name, n.Ipv4, ipv4, n.Ipv6, ipv6)
	if err := s.q.InsertAuditLog(ctx, tx, store.InsertAuditLogParams{OrganizationID: audit.Nullable(n.OrganizationID),
		Action: "node.address", Target: domain.Truncate(change, 1000), Status: 200}); err != nil {
		return fmt.Errorf("audit the addresses of node %s: %w", n.ID, err)
	}
	s.log.InfoContext(ctx, "a node's public addresses changed with a power cycle", slog.String("node_id", n.ID.String()),
		slog.String("organization_id", n.OrganizationID.String()), slog.String("ipv4_was", n.Ipv4), slog.String("ipv4", ipv4),
		slog.String("ipv6_was", n.Ipv6), slog.String("ipv6", ipv6))
	if s.dns == nil {
		return nil
	}
	if err := s.dns.NodeAddressChanged(ctx, tx, upd); err != nil {
		return fmt.Errorf("update the DNS records of node %s: %w", n.ID, err)
	}
	return nil
}

// complete runs fn (if any) and completes the job in one transaction.
func (s *Service) complete(ctx context.Context, job Job, fn func(tx pgx.Tx) error) error {
	return s.st.InTx(ctx, func(tx pgx.Tx) error {
		if fn != nil {
			if err := fn(tx); err != nil {
				return err
			}
		}
		if job.Complete != nil {
			return job.Complete(ctx, tx)
		}
		return nil
	})
}

// outcome is what a carried-out action leaves to record.
type outcome struct {
	state      string    // the power state
	addr       addresses // the addresses after a start or reboot (empty: unknown)
	addrUnread bool      // the addresses could not be read after a start or reboot
	hard       bool      // a stop had to power the node off
}

// carryOut does the action.
func (s *Service) carryOut(ctx context.Context, n store.Node, a store.NodeAction) (outcome, error) {
	if n.Provider == localProvider {
		state, err := s.localAction(ctx, n, a.Kind)
		return outcome{state: state}, err
	}
	if err := s.canOperate(n); err != nil {
		return outcome{}, err
	}
	m, err := s.machine(ctx, n)
	if err != nil {
		return outcome{}, err
	}
	p := s.clouds[n.Provider]
	switch a.Kind {
	case KindStart, KindReboot:
		out := outcome{state: recordedRunning}
		if a.Kind == KindStart {
			err = p.Start(ctx, m)
		} else {
			err = p.Reboot(ctx, m)
		}
		if err != nil {
			return out, err
		}
		// A start may have given the machine a new public address (EC2
		// without an Elastic IP); a reboot keeps it, but the read is cheap.
		// The action succeeded whatever the read says: the read is tried
		// a few times with a short backoff, and if it still fails a
		// node_addresses job records the addresses (and moves the node's
		// DNS) without waiting for anyone to read the power status.
		st, err := s.readAddresses(ctx, p, m)
		switch {
		case err != nil:
			s.log.WarnContext(ctx, "power action succeeded but the machine's addresses could not be read: a node_addresses job records them",
				slog.String("node_id", n.ID.String()), slog.String("organization_id", n.OrganizationID.String()),
				slog.String("kind", a.Kind), slog.Any("error", err))
			out.addrUnread = true
		case st.State == providers.PowerRunning:
			out.addr = addresses{ipv4: st.IPv4, ipv6: st.IPv6}
		}
		return out, nil
	case KindStop:
		hard, err := p.Stop(ctx, m, a.Force, s.stopTimeout)
		return outcome{state: recordedStopped, hard: hard}, err
	}
	return outcome{}, fmt.Errorf("action %s: unknown kind %q: %w", a.ID, a.Kind, domain.ErrUnprocessable)
}

// readAddresses reads the machine's status up to addressTries times,
// pausing addrRetry, then twice as long, between the tries.
func (s *Service) readAddresses(ctx context.Context, p Power, m providers.Machine) (providers.PowerStatus, error) {
	pause := s.addrRetry
	var err error
	for try := 1; ; try++ {
		var st providers.PowerStatus
		if st, err = p.PowerStatus(ctx, m); err == nil {
			return st, nil
		}
		if try == addressTries {
			return providers.PowerStatus{}, err
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return providers.PowerStatus{}, err
		case <-t.C:
		}
		pause *= 2
	}
}

// localStatus is a local node's machine: running unless a stop left it off.
func (s *Service) localStatus(ctx context.Context, n store.Node) (providers.PowerStatus, error) {
	m, err := s.q.GetLocalMachine(ctx, s.st.Pool, n.ID)
	if store.IsNoRows(err) {
		return providers.PowerStatus{State: providers.PowerRunning, Provider: recordedRunning}, nil
	}
	if err != nil {
		return providers.PowerStatus{}, fmt.Errorf("local machine of node %s: %w", n.ID, err)
	}
	return providers.PowerStatus{State: m.PowerState, Provider: m.PowerState}, nil
}

// localAction powers a local node's machine on or off, or reboots it.
func (s *Service) localAction(ctx context.Context, n store.Node, kind string) (string, error) {
	cur, err := s.localStatus(ctx, n)
	if err != nil {
		return "", err
	}
	set := func(state string, boot bool) error {
		if _, err := s.q.SetLocalMachine(ctx, s.st.Pool, store.SetLocalMachineParams{NodeID: n.ID, PowerState: state, Boot: boot}); err != nil {
			return fmt.Errorf("local machine of node %s: %w", n.ID, err)
		}
		return nil
	}
	switch kind {
	case KindStart:
		return recordedRunning, set(recordedRunning, cur.State != providers.PowerRunning)
	case KindStop:
		return recordedStopped, set(recordedStopped, false)
	case KindReboot:
		if cur.State != providers.PowerRunning {
			return "", fmt.Errorf("local: reboot node %s: it is %s: %w", n.Name, cur.State, providers.ErrIncorrectState)
		}
		return recordedRunning, set(recordedRunning, true)
	}
	return "", fmt.Errorf("unknown action kind %q: %w", kind, domain.ErrUnprocessable)
}
