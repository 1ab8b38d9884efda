package api_test

import (
	"bytes"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/shardform/shardform/identity"
	"github.com/shardform/shardform/internal/app"
	"github.com/shardform/shardform/seal"
	"github.com/shardform/shardform/sshca"
	"github.com/shardform/shardform/sshsign"
	"github.com/shardform/shardform/store"
	"github.com/shardform/shardform/store/storetest"
	"github.com/shardform/shardform/worker"
)

// TestSSHSignNoWorker: when no worker takes the ssh_sign job before the
// deadline, the API answers 503 with a message saying so (not a 500), and
// records no certificate; the job left in the queue is cancelled by the
// first worker that sees it after the deadline.
func TestSSHSignNoWorker(t *testing.T) {
	t.Parallel()
	pool := storetest.NewPool(t)
	st := store.NewStore(pool)
	key := bytes.Repeat([]byte{42}, seal.KeySize)
	sealer, err := seal.New(key)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := sshsign.New(st, sshca.NewVault(sealer), sshsign.Options{SignTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	// An insert-only River client: this API process runs no workers, and
	// none runs elsewhere.
	client, err := worker.NewClient(pool, st, worker.Options{SSH: svc, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	svc.UseQueue(client)
	srv, err := app.NewAPI(app.APIConfig{
		Store: st, MasterKey: key, SSH: svc, Version: "test",
		Identity: identity.Options{AllowRegistration: true, Password: identity.PasswordParams{Memory: 1024, Time: 1, Threads: 1}},
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	b := &bundle{t: t, srv: srv, pool: pool, contract: &contract{}}
	a := b.bootstrap("ops@example.com")
	pub := newUserKey(t, t.TempDir(), "id").public

	start := time.Now()
	r := b.do(req{method: "POST", path: "/v1/ssh/certificate", token: a.access,
		body: map[string]any{"public_key": pub, "principals": []string{"root"}, "validity_hours": 1}})
	if r.Status != 503 || !strings.Contains(r.errMsg(), "no SSH signing worker answered within 300ms") {
		t.Fatalf("got %d %q, want 503 naming the missing worker", r.Status, r.errMsg())
	}
	if waited := time.Since(start); waited > 5*time.Second {
		t.Errorf("answered after %s, the deadline is 300ms", waited)
	}
	var n int
	if err := pool.QueryRow(t.Context(), "SELECT count(*) FROM ssh_certificates").Scan(&n); err != nil || n != 0 {
		t.Errorf("%d certificates recorded (%v)", n, err)
	}
}
