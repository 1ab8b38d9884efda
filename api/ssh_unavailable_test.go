package api_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

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
// first worker that sees it after the deadline, and no certificate is ever
// signed for it.
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
		Store: st, MasterKey: key, SSH: svc, Version: "test", Docs: testDocs,
		Identity: identity.Options{AllowRegistration: true, Password: identity.PasswordParams{Memory: 1024, Time: 1, Threads: 1}},
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	b := &bundle{t: t, srv: srv, pool: pool, contract: &contract{}}
	a := b.bootstrap("ops@example.com")
	pub := newUserKey(t, t.TempDir(), "id").public

	r := b.do(req{method: "POST", path: "/v1/ssh/certificate", token: a.access,
		body: map[string]any{"public_key": pub, "principals": []string{"root"}, "validity_hours": 1}})
	if r.Status != 503 || !strings.Contains(r.errMsg(), "no SSH signing worker answered within 300ms") {
		t.Fatalf("got %d %q, want 503 naming the missing worker", r.Status, r.errMsg())
	}
	certificates := func() int {
		t.Helper()
		var n int
		if err := pool.QueryRow(t.Context(), "SELECT count(*) FROM ssh_certificates").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := certificates(); n != 0 {
		t.Errorf("%d certificates recorded for a refused request", n)
	}

	// A worker starts after the deadline: it cancels the request's job
	// instead of signing a certificate nobody waits for.
	late, err := worker.NewClient(pool, st, worker.Options{Work: true, SSH: svc, CleanupInterval: time.Hour,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ended, stop := late.Subscribe(river.EventKindJobCancelled, river.EventKindJobCompleted, river.EventKindJobFailed)
	defer stop()
	if err := late.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = late.Stop(context.WithoutCancel(t.Context())) }()
	var job *rivertype.JobRow
	for job == nil {
		select {
		case ev := <-ended:
			if ev.Job.Kind == "ssh_sign" {
				job = ev.Job
			}
		case <-time.After(30 * time.Second):
			t.Fatal("the late worker never finished the ssh_sign job")
		}
	}
	if job.State != rivertype.JobStateCancelled || job.Attempt != 1 || len(job.Errors) != 1 ||
		!strings.Contains(job.Errors[0].Error, "the request expired before a worker signed it") {
		t.Errorf("late ssh_sign job: %s after %d attempts, errors %+v; want cancelled on its first attempt as expired", job.State, job.Attempt, job.Errors)
	}
	if n := certificates(); n != 0 {
		t.Errorf("%d certificates recorded after the deadline", n)
	}
	if n := b.count("SELECT count(*) FROM river_job WHERE kind = 'ssh_sign'"); n != 1 {
		t.Errorf("%d ssh_sign jobs, want the one", n)
	}
}
