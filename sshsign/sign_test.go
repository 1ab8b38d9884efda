package sshsign_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"
	"golang.org/x/crypto/ssh"

	"github.com/shardform/shardform/domain"
	"github.com/shardform/shardform/seal"
	"github.com/shardform/shardform/sshca"
	"github.com/shardform/shardform/sshsign"
	"github.com/shardform/shardform/store"
	"github.com/shardform/shardform/store/storetest"
)

// testBundle is one test's service on its own database, with one
// organization.
type testBundle struct {
	pool *pgxpool.Pool
	svc  *sshsign.Service
	org  uuid.UUID
	key  string // a user public key
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	pool := storetest.NewPool(t)
	sealer, err := seal.New(bytes.Repeat([]byte{7}, seal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	svc, err := sshsign.New(store.NewStore(pool), sshca.NewVault(sealer), sshsign.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var org uuid.UUID
	if err := pool.QueryRow(context.Background(), "INSERT INTO organizations (name) VALUES ('acme') RETURNING id").Scan(&org); err != nil {
		t.Fatal(err)
	}
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return &testBundle{pool: pool, svc: svc, org: org, key: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub)))}
}

func (b *testBundle) args() sshsign.SignArgs {
	return sshsign.SignArgs{OrganizationID: b.org, User: "ops@example.com", PublicKey: b.key,
		Principals: []string{"root"}, NotAfter: time.Now().Add(time.Minute)}
}

// certificates returns the recorded serials, in order.
func (b *testBundle) certificates(t *testing.T) []int64 {
	t.Helper()
	rows, err := b.pool.Query(context.Background(), "SELECT serial FROM ssh_certificates WHERE organization_id = $1 ORDER BY serial", b.org)
	if err != nil {
		t.Fatal(err)
	}
	serials, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		t.Fatal(err)
	}
	return serials
}

var errCrash = errors.New("injected crash after signing, before the commit")

// TestRunSignCrashBeforeCommit: a worker that fails or dies after signing
// but before its transaction commits leaves nothing recorded, and its
// certificate goes nowhere (RunSign returns only an error). The retried job
// records exactly one certificate, with a fresh serial: the lost one is never
// reused.
func TestRunSignCrashBeforeCommit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		crash func(ctx context.Context, tx pgx.Tx) error
	}{
		{"completion fails", func(context.Context, pgx.Tx) error { return errCrash }},
		{"worker panics", func(context.Context, pgx.Tx) error { panic(errCrash) }},
		{"record written, then the connection dies", func(ctx context.Context, tx pgx.Tx) error {
			// The certificate row is in the transaction; the backend goes
			// away before COMMIT, as when the worker's host dies.
			var n int
			if err := tx.QueryRow(ctx, "SELECT count(*) FROM ssh_certificates").Scan(&n); err != nil || n != 1 {
				return errors.Join(err, errors.New("the certificate is not in the transaction"))
			}
			_, err := tx.Exec(ctx, "SELECT pg_terminate_backend(pg_backend_pid())")
			return errors.Join(err, errCrash)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			ctx := context.Background()
			const jobID = 41
			var err error
			func() {
				defer func() {
					if r := recover(); r != nil {
						err = r.(error)
					}
				}()
				err = b.svc.RunSign(ctx, sshsign.Job{ID: jobID, Args: b.args(), Complete: tt.crash})
			}()
			if err == nil {
				t.Fatal("RunSign succeeded despite the crash")
			}
			if got := b.certificates(t); len(got) != 0 {
				t.Fatalf("recorded %v after the crash", got)
			}

			// River retries the job: one certificate, a new serial.
			completed := 0
			err = b.svc.RunSign(ctx, sshsign.Job{ID: jobID, Args: b.args(), Complete: func(context.Context, pgx.Tx) error {
				completed++
				return nil
			}})
			if err != nil {
				t.Fatal(err)
			}
			if got := b.certificates(t); len(got) != 1 || got[0] != 2 || completed != 1 {
				t.Errorf("after the retry: serials %v (want [2]), completed %d", got, completed)
			}
		})
	}
}

// crashingWorker is the ssh_sign worker with a crash injected between
// signing and committing on the job's first attempt.
type crashingWorker struct {
	river.WorkerDefaults[sshsign.SignArgs]
	svc *sshsign.Service
}

func (w *crashingWorker) Work(ctx context.Context, job *river.Job[sshsign.SignArgs]) error {
	return w.svc.RunSign(ctx, sshsign.Job{ID: job.ID, Args: job.Args, Complete: func(ctx context.Context, tx pgx.Tx) error {
		if job.Attempt == 1 {
			return errCrash
		}
		_, err := river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, job)
		return err
	}})
}

// TestSignSurvivesWorkerCrash goes through River and the waiting API call:
// while the crashed first attempt waits for its retry nothing is recorded
// and the caller has nothing; the retry's certificate is the one recorded
// and the one handed out.
func TestSignSurvivesWorkerCrash(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	workers := river.NewWorkers()
	river.AddWorker(workers, &crashingWorker{svc: b.svc})
	client, err := river.NewClient(riverpgxv5.New(b.pool), &river.Config{
		Workers: workers, Queues: map[string]river.QueueConfig{sshsign.QueueSSH: {MaxWorkers: 2}},
		FetchPollInterval: 20 * time.Millisecond, FetchCooldown: 10 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stop, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_ = client.Stop(stop)
	})
	b.svc.UseQueue(client)

	p := &domain.Principal{OrgID: b.org, HasOrg: true, Email: "ops@example.com", UserID: uuid.New(),
		Perms: domain.NewPermissionSet([]domain.Permission{domain.PermSSHSign})}
	// The user row must exist for the certificate's user_id.
	if _, err := b.pool.Exec(ctx, "INSERT INTO users (id, email, password_hash) VALUES ($1, $2, 'x')", p.UserID, p.Email); err != nil {
		t.Fatal(err)
	}
	type result struct {
		signed sshsign.Signed
		err    error
	}
	done := make(chan result, 1)
	go func() {
		s, err := b.svc.Sign(ctx, p, sshsign.SignRequest{PublicKey: b.key, Principals: []string{"root"}})
		done <- result{s, err}
	}()

	// Wait for the first attempt to fail.
	var job *rivertype.JobRow
	for deadline := time.Now().Add(10 * time.Second); ; {
		jobs, err := client.JobList(ctx, river.NewJobListParams().Kinds(sshsign.KindSign))
		if err != nil {
			t.Fatal(err)
		}
		if len(jobs.Jobs) == 1 && len(jobs.Jobs[0].Errors) == 1 {
			job = jobs.Jobs[0]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the first attempt did not fail: %+v", jobs.Jobs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(job.Errors[0].Error, errCrash.Error()) {
		t.Errorf("job error %q", job.Errors[0].Error)
	}
	select {
	case r := <-done:
		t.Fatalf("Sign answered before the retry: %+v %v", r.signed, r.err)
	default:
	}
	if got := b.certificates(t); len(got) != 0 {
		t.Fatalf("recorded %v after the crashed attempt", got)
	}
	// Run the retry now rather than after River's backoff.
	if _, err := client.JobRetry(ctx, job.ID); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	got := b.certificates(t)
	if len(got) != 1 || got[0] != 2 || r.signed.SerialNumber != 2 {
		t.Fatalf("recorded serials %v, handed out serial %d; want exactly serial 2", got, r.signed.SerialNumber)
	}
	var recorded string
	if err := b.pool.QueryRow(ctx, "SELECT certificate FROM ssh_certificates WHERE job_id = $1", job.ID).Scan(&recorded); err != nil {
		t.Fatal(err)
	}
	if recorded != r.signed.Certificate {
		t.Error("the certificate handed out is not the one recorded")
	}
	final, err := client.JobGet(ctx, job.ID)
	if err != nil {
		t.Fatal(err)
	}
	if final.State != rivertype.JobStateCompleted || final.Attempt != 2 {
		t.Errorf("job %s after %d attempts", final.State, final.Attempt)
	}
}
