package sshsign

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/shardform/shardform/sshca"
	"github.com/shardform/shardform/store"
)

// caCacheTTL bounds how long an organization's policy and signing key are
// used from memory. Changes made through this process drop the entry at
// once, and other processes hear of them through the shared listener (see
// waiters); the TTL covers a missed notification. The worker never signs on
// stale data: RecordSSHCertificate refuses a certificate whose key or policy
// is no longer current, and RunSign signs again.
const caCacheTTL = 5 * time.Second

// serialBatch is how many serials one round trip to the ssh_serials
// sequence takes. Serials left over when the process ends are never used:
// that is fine, they only need to be unique.
const serialBatch = 16

// caState is an organization's signing policy (with its version) and signing
// key, as cached.
type caState struct {
	policy        sshca.Policy
	policyVersion int64
	key           store.SshCaKey
	loaded        time.Time
}

// caCache holds caState by organization.
type caCache struct {
	mu      sync.Mutex
	entries map[uuid.UUID]caState
	// gen counts invalidations, so a load that raced one is not stored.
	gen uint64
}

// ca returns the organization's policy and signing key (created on first
// use), from memory when fresh.
func (s *Service) ca(ctx context.Context, org uuid.UUID) (caState, error) {
	now := s.now()
	c := &s.cache
	c.mu.Lock()
	e, ok := c.entries[org]
	gen := c.gen
	c.mu.Unlock()
	if ok && now.Sub(e.loaded) < caCacheTTL && now.Sub(e.loaded) >= 0 {
		return e, nil
	}
	pol, version, err := s.policy(ctx, s.st.Pool, org)
	if err != nil {
		return caState{}, err
	}
	key, err := s.signingKey(ctx, org)
	if err != nil {
		return caState{}, err
	}
	e = caState{policy: pol, policyVersion: version, key: key, loaded: now}
	c.mu.Lock()
	if c.gen == gen {
		c.entries[org] = e
	}
	c.mu.Unlock()
	return e, nil
}

// invalidate drops the organization's cached policy and signing key.
func (s *Service) invalidate(org uuid.UUID) {
	c := &s.cache
	c.mu.Lock()
	delete(c.entries, org)
	c.gen++
	c.mu.Unlock()
}

// changedCA drops the organization's cached CA state here and tells the
// other processes to do the same.
func (s *Service) changedCA(ctx context.Context, db store.DBTX, org uuid.UUID) error {
	s.invalidate(org)
	if err := s.q.NotifySSH(ctx, db, store.NotifySSHParams{Channel: channelCA, Payload: org.String()}); err != nil {
		return fmt.Errorf("announce CA change: %w", err)
	}
	return nil
}

// serials hands out user certificate serials from the ssh_serials
// sequence, serialBatch per round trip.
type serials struct {
	mu   sync.Mutex
	free []int64
}

// nextSerial returns a serial never handed out before, by any process.
func (s *Service) nextSerial(ctx context.Context) (int64, error) {
	p := &s.serials
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.free) == 0 {
		got, err := s.q.NextSSHSerials(ctx, s.st.Pool, serialBatch)
		if err != nil {
			return 0, fmt.Errorf("allocate serials: %w", err)
		}
		if len(got) == 0 {
			return 0, fmt.Errorf("allocate serials: the sequence returned none")
		}
		slices.Sort(got)
		p.free = got
	}
	serial := p.free[0]
	p.free = p.free[1:]
	return serial, nil
}
