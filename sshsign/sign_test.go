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
	"sync/atomic"
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
	return &testBundle{pool: pool, svc: svc, org: org, key: newPublicKey(t)}
}

// newPublicKey returns a fresh ed25519 public key in authorized_keys form.
func newPublicKey(t *testing.T) string {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub)))
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

var errCrash = errors.New("injected crash after signing, before the record")

// TestRunSignCrashBeforeRecord: a worker that fails or dies after signing
// but before its record commits leaves nothing recorded, and its
// certificate goes nowhere (RunSign returns only an error). The retried job
// records exactly one certificate, with a fresh serial: the lost one is never
// reused.
func TestRunSignCrashBeforeRecord(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		crash func(ctx context.Context) error
	}{
		{"worker fails", func(context.Context) error { return errCrash }},
		{"worker panics", func(context.Context) error { panic(errCrash) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			ctx := context.Background()
			const jobID = 41
			sshsign.SetBeforeRecord(b.svc, tt.crash)
			var err error
			func() {
				defer func() {
					if r := recover(); r != nil {
						err = r.(error)
					}
				}()
				err = b.svc.RunSign(ctx, sshsign.Job{ID: jobID, Attempt: 1, Args: b.args()})
			}()
			if err == nil {
				t.Fatal("RunSign succeeded despite the crash")
			}
			if got := b.certificates(t); len(got) != 0 {
				t.Fatalf("recorded %v after the crash", got)
			}

			// River retries the job: one certificate, a new serial.
			sshsign.SetBeforeRecord(b.svc, nil)
			if err := b.svc.RunSign(ctx, sshsign.Job{ID: jobID, Attempt: 2, Args: b.args()}); err != nil {
				t.Fatal(err)
			}
			if got := b.certificates(t); len(got) != 1 || got[0] != 2 {
				t.Errorf("after the retry: serials %v, want [2]", got)
			}
		})
	}
}

// TestRunSignRetryAfterRecord: a job whose certificate was recorded but
// which River never marked completed (the worker died in between) runs
// again; that attempt signs nothing new.
func TestRunSignRetryAfterRecord(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	const jobID = 42
	if err := b.svc.RunSign(ctx, sshsign.Job{ID: jobID, Attempt: 1, Args: b.args()}); err != nil {
		t.Fatal(err)
	}
	// Even past the API's deadline: the certificate exists, so the job
	// completes rather than being cancelled as expired.
	late := b.args()
	late.NotAfter = time.Now().Add(-time.Minute)
	if err := b.svc.RunSign(ctx, sshsign.Job{ID: jobID, Attempt: 2, Args: late}); err != nil {
		t.Fatalf("the retry of a recorded job: %v", err)
	}
	if got := b.certificates(t); len(got) != 1 || got[0] != 1 {
		t.Errorf("serials %v, want [1]", got)
	}
}

// crashingWorker is the ssh_sign worker with a crash injected on the job's
// first attempt: before the record (SetBeforeRecord) or after it, before
// River completes the job (afterRecord).
type crashingWorker struct {
	river.WorkerDefaults[sshsign.SignArgs]
	svc         *sshsign.Service
	afterRecord bool
}

func (w *crashingWorker) Work(ctx context.Context, job *river.Job[sshsign.SignArgs]) error {
	err := w.svc.RunSign(ctx, sshsign.Job{ID: job.ID, Attempt: job.Attempt, Args: job.Args})
	if err == nil && w.afterRecord && job.Attempt == 1 {
		return errCrash
	}
	return err
}

// TestSignSurvivesWorkerCrash goes through River and the waiting API call.
// A crash before the record: while the first attempt waits for its retry
// nothing is recorded and the caller has nothing; the retry's certificate
// is the one recorded and the one handed out. A crash after the record:
// the caller has the recorded certificate, and the retry signs nothing new.
func TestSignSurvivesWorkerCrash(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		afterRecord bool
		serial      int64 // the one certificate recorded and handed out
	}{
		{"before the record", false, 2},
		{"after the record", true, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			testSignSurvivesWorkerCrash(t, tt.afterRecord, tt.serial)
		})
	}
}

func testSignSurvivesWorkerCrash(t *testing.T, afterRecord bool, serial int64) {
	b := setup(t)
	ctx := context.Background()
	if !afterRecord {
		var crashed atomic.Bool
		sshsign.SetBeforeRecord(b.svc, func(context.Context) error {
			if crashed.CompareAndSwap(false, true) {
				return errCrash
			}
			return nil
		})
	}
	workers := river.NewWorkers()
	river.AddWorker(workers, &crashingWorker{svc: b.svc, afterRecord: afterRecord})
	client, err := river.NewClient(riverpgxv5.New(b.pool), &river.Config{
		Workers: workers, Queues: map[string]river.QueueConfig{sshsign.QueueSSH: {MaxWorkers: 1}},
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
	var r result
	if afterRecord {
		// Recorded: the caller has it already.
		r = <-done
	} else {
		select {
		case r := <-done:
			t.Fatalf("Sign answered before the retry: %+v %v", r.signed, r.err)
		default:
		}
		if got := b.certificates(t); len(got) != 0 {
			t.Fatalf("recorded %v after the crashed attempt", got)
		}
	}
	// Run the retry now rather than after River's backoff.
	if _, err := client.JobRetry(ctx, job.ID); err != nil {
		t.Fatal(err)
	}
	if !afterRecord {
		r = <-done
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	final := waitJobFinal(t, client, job.ID)
	if final.State != rivertype.JobStateCompleted || final.Attempt != 2 {
		t.Errorf("job %s after %d attempts", final.State, final.Attempt)
	}
	got := b.certificates(t)
	if len(got) != 1 || got[0] != serial || r.signed.SerialNumber != uint64(serial) {
		t.Fatalf("recorded serials %v, handed out serial %d; want exactly serial %d", got, r.signed.SerialNumber, serial)
	}
	var recorded string
	if err := b.pool.QueryRow(ctx, "SELECT certificate FROM ssh_certificates WHERE job_id = $1", job.ID).Scan(&recorded); err != nil {
		t.Fatal(err)
	}
	if recorded != r.signed.Certificate {
		t.Error("the certificate handed out is not the one recorded")
	}
}

// waitJobFinal waits until River has finalized job id (its completer
// batches completions).
func waitJobFinal(t *testing.T, client *river.Client[pgx.Tx], id int64) *rivertype.JobRow {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; {
		job, err := client.JobGet(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if job.FinalizedAt != nil || time.Now().After(deadline) {
			return job
		}
		time.Sleep(10 * time.Millisecond)
	}
}
