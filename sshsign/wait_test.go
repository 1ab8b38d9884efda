package sshsign

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"golang.org/x/crypto/ssh"

	"github.com/shardform/shardform/domain"
	"github.com/shardform/shardform/seal"
	"github.com/shardform/shardform/sshca"
	"github.com/shardform/shardform/store"
	"github.com/shardform/shardform/store/storetest"
)

// twoProcesses is two services on one database, as an API process and a
// worker process would have.
type twoProcesses struct {
	api, worker *Service
	org         uuid.UUID
}

func setupTwo(t *testing.T) *twoProcesses {
	t.Helper()
	pool := storetest.NewPool(t)
	sealer, err := seal.New(bytes.Repeat([]byte{7}, seal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	var svcs [2]*Service
	for i := range svcs {
		if svcs[i], err = New(store.NewStore(pool), sshca.NewVault(sealer), Options{}); err != nil {
			t.Fatal(err)
		}
	}
	var org uuid.UUID
	if err := pool.QueryRow(context.Background(), "INSERT INTO organizations (name) VALUES ('acme') RETURNING id").Scan(&org); err != nil {
		t.Fatal(err)
	}
	return &twoProcesses{api: svcs[0], worker: svcs[1], org: org}
}

// eventually retries try every 50 ms for up to 10 s (the listener
// connects in the background).
func eventually(t *testing.T, what string, try func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if try() {
			return
		}
	}
	t.Fatalf("%s: not within 10 s", what)
}

// TestAnswerAcrossProcesses: a worker in another process wakes the waiting
// request through the API process's shared listener, with the refusal
// itself when the job is refused.
func TestAnswerAcrossProcesses(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("signed", func(t *testing.T) {
		t.Parallel()
		p := setupTwo(t)
		wt := p.api.register()
		defer p.api.unregister(wt)
		p.api.listen()
		eventually(t, "notification", func() bool {
			p.worker.answer(ctx, wt.reply, Signed{}, nil)
			select {
			case res := <-wt.ch:
				// Across processes the waiter is told to look in the
				// database, never handed a value.
				if res.value != nil || res.err != nil {
					t.Fatalf("got %+v", res)
				}
				return true
			default:
				return false
			}
		})
	})

	t.Run("refused", func(t *testing.T) {
		t.Parallel()
		p := setupTwo(t)
		wt := p.api.register()
		defer p.api.unregister(wt)
		p.api.listen()
		eventually(t, "notification", func() bool {
			p.worker.answer(ctx, wt.reply, nil, domain.Forbidden(`principal "admin" is not allowed`))
			select {
			case res := <-wt.ch:
				var pub *domain.PublicError
				if !errors.Is(res.err, domain.ErrForbidden) || !errors.As(res.err, &pub) || pub.Message != `principal "admin" is not allowed` {
					t.Fatalf("got %+v", res)
				}
				return true
			default:
				return false
			}
		})
	})

	t.Run("same process, no notification", func(t *testing.T) {
		t.Parallel()
		p := setupTwo(t)
		wt := p.api.register()
		defer p.api.unregister(wt)
		p.api.answer(ctx, wt.reply, Signed{SerialNumber: 7}, nil)
		res := <-wt.ch
		if s, ok := res.value.(Signed); !ok || s.SerialNumber != 7 {
			t.Fatalf("got %+v", res)
		}
	})
}

// TestCAChangeInvalidatesOtherProcesses: a policy change or key rotation
// in one process drops the cached CA state of the others.
func TestCAChangeInvalidatesOtherProcesses(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := setupTwo(t)
	admin := &domain.Principal{OrgID: p.org, HasOrg: true, UserID: uuid.New(),
		Perms: domain.NewPermissionSet([]domain.Permission{domain.PermSSHAdmin})}
	cached := func() bool {
		p.worker.cache.mu.Lock()
		defer p.worker.cache.mu.Unlock()
		_, ok := p.worker.cache.entries[p.org]
		return ok
	}
	// The worker's listener runs while a request waits.
	wt := p.worker.register()
	defer p.worker.unregister(wt)
	p.worker.listen()

	for _, change := range []struct {
		name string
		do   func() error
	}{
		{"policy", func() error {
			pol := sshca.DefaultPolicy()
			pol.MaxValidityHours = 2
			pol.DefaultValidityHours = 1
			_, err := p.api.SetPolicy(ctx, admin, pol)
			return err
		}},
		{"rotation", func() error { _, err := p.api.RotateCAKey(ctx, admin, ""); return err }},
	} {
		// Notifications of the previous change may still arrive: load
		// until the state stays cached.
		var before caState
		eventually(t, "cached", func() bool {
			var err error
			if before, err = p.worker.ca(ctx, p.org); err != nil {
				t.Fatal(err)
			}
			time.Sleep(100 * time.Millisecond)
			return cached()
		})
		// The listener may still be connecting: change until it hears.
		eventually(t, change.name+" invalidation", func() bool {
			if err := change.do(); err != nil {
				t.Fatal(err)
			}
			return !cached()
		})
		after, err := p.worker.ca(ctx, p.org)
		if err != nil {
			t.Fatal(err)
		}
		if before.policyVersion == after.policyVersion && before.key.ID == after.key.ID {
			t.Errorf("%s: the reloaded state is the old one", change.name)
		}
	}
}

// TestRunSignStaleCache: a worker whose cached CA state is stale (it
// missed the change) never records a certificate of the old key or policy:
// the record is refused, and it signs again with the current ones.
func TestRunSignStaleCache(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := setupTwo(t)
	pool := p.worker.st.Pool
	admin := &domain.Principal{OrgID: p.org, HasOrg: true, UserID: uuid.New(),
		Perms: domain.NewPermissionSet([]domain.Permission{domain.PermSSHAdmin})}
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	args := SignArgs{OrganizationID: p.org, User: "ops@example.com", PublicKey: string(ssh.MarshalAuthorizedKey(sshPub)),
		Principals: []string{"root"}, NotAfter: time.Now().Add(time.Minute)}

	old, err := p.worker.ca(ctx, p.org)
	if err != nil {
		t.Fatal(err)
	}
	// Another process rotates; this worker listens to nothing.
	if _, err := p.api.RotateCAKey(ctx, admin, ""); err != nil {
		t.Fatal(err)
	}
	if err := p.worker.RunSign(ctx, Job{ID: 1, Args: args}); err != nil {
		t.Fatal(err)
	}
	var keyID uuid.UUID
	if err := pool.QueryRow(ctx, "SELECT ca_key_id FROM ssh_certificates WHERE job_id = 1").Scan(&keyID); err != nil {
		t.Fatal(err)
	}
	if keyID == old.key.ID {
		t.Error("signed with the rotated-out key")
	}

	// Another process forbids root; the worker's cached policy allows it.
	pol := sshca.DefaultPolicy()
	pol.AllowedPrincipals = []string{"shardform"}
	if _, err := p.api.SetPolicy(ctx, admin, pol); err != nil {
		t.Fatal(err)
	}
	if err := p.worker.RunSign(ctx, Job{ID: 2, Args: args}); err == nil {
		t.Error("signed under the old policy")
	}
	var n int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM ssh_certificates WHERE job_id = 2").Scan(&n); err != nil || n != 0 {
		t.Errorf("%d certificates recorded under the old policy (%v)", n, err)
	}
}
