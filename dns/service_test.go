package dns_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/rivertype"

	"github.com/shardform/shardform/credentials"
	"github.com/shardform/shardform/dns"
	"github.com/shardform/shardform/domain"
	cffake "github.com/shardform/shardform/internal/fake/cloudflare"
	"github.com/shardform/shardform/seal"
	"github.com/shardform/shardform/store"
	"github.com/shardform/shardform/store/storetest"
	"github.com/shardform/shardform/worker"
)

const (
	testZone  = "023e105f4ecef8ad9ca31a8372d0c353" // example.com in the fake
	testToken = "cf-test-token-0123456789abcdef"
)

// svcBundle is a dns.Service on its own database with running dns workers,
// against a fake Cloudflare, and an organization with a cloudflare credential.
type svcBundle struct {
	t     *testing.T
	pool  *pgxpool.Pool
	st    *store.Store
	creds *credentials.Service
	cf    *cffake.Fake
	svc   *dns.Service
	p     *domain.Principal
}

// svcOpts adjust the service of a bundle.
type svcOpts struct {
	dns      dns.Options
	noWorker bool // jobs stay queued
}

func svcSetup(t *testing.T, o svcOpts) *svcBundle {
	t.Helper()
	ctx := context.Background()
	pool := storetest.NewPool(t)
	st := store.NewStore(pool)
	sealer, err := seal.New(bytes.Repeat([]byte{7}, seal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	cf := cffake.New(t)
	cf.AddZone(testZone, "example.com")
	cf.AddToken(testToken)
	creds := credentials.New(st, sealer, nil)
	b := &svcBundle{t: t, pool: pool, st: st, creds: creds, cf: cf}
	b.svc = b.newService(o.dns)
	rc, err := worker.NewClient(pool, st, worker.Options{Work: !o.noWorker, DNS: b.svc, DNSReconcileInterval: -1,
		FetchPollInterval: 50 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	b.svc.UseQueue(rc)
	if !o.noWorker {
		if err := rc.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			stop, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = rc.Stop(stop)
		})
	}
	var org, user uuid.UUID
	if err := pool.QueryRow(ctx, "INSERT INTO organizations (name) VALUES ('Acme Games') RETURNING id").Scan(&org); err != nil {
		t.Fatal(err)
	}
	if err := pool.QueryRow(ctx, "INSERT INTO users (email, password_hash) VALUES ('ops@example.com', 'x') RETURNING id").Scan(&user); err != nil {
		t.Fatal(err)
	}
	b.p = &domain.Principal{UserID: user, OrgID: org, HasOrg: true, Perms: domain.NewPermissionSet([]domain.Permission{
		domain.PermCredentialsWrite, domain.PermDNSRead, domain.PermDNSWrite})}
	if _, err := creds.Create(ctx, b.p, credentials.Input{Name: "cf", Provider: "cloudflare", Secret: credentials.Secret{"api_token": testToken}}); err != nil {
		t.Fatal(err)
	}
	return b
}

// newService is another dns.Service (another process) on the bundle's database.
func (b *svcBundle) newService(o dns.Options) *dns.Service {
	o.Endpoint = b.cf.URL
	return dns.New(b.st, b.creds, o)
}

// create asks for a record and waits until its job is done.
func (b *svcBundle) create(in dns.CreateRequest) dns.Record {
	b.t.Helper()
	in.ZoneID = testZone
	r, err := b.svc.Create(context.Background(), b.p, in)
	if err != nil {
		b.t.Fatalf("create %+v: %v", in, err)
	}
	return b.wait(r.ID)
}

// wait polls a record until it leaves pending and deleting.
func (b *svcBundle) wait(id uuid.UUID) dns.Record {
	b.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r, err := b.svc.Get(context.Background(), b.p, id)
		if err != nil {
			b.t.Fatal(err)
		}
		if r.Status != dns.StatusPending && r.Status != dns.StatusDeleting {
			return r
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("record %s still %s after 30s", id, r.Status)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func ptr[T any](v T) *T { return &v }

// TestReconcileOfProxiedAndSRVRecordsRepairsNothing: Cloudflare keeps a
// proxied record's TTL automatic (1) and answers SRV content with tabs;
// neither is drift, so a reconcile right after the creates (and a second
// one) repairs nothing. A proxied record asking for another TTL is refused.
func TestReconcileOfProxiedAndSRVRecordsRepairsNothing(t *testing.T) {
	t.Parallel()
	b := svcSetup(t, svcOpts{})
	ctx := context.Background()
	_, err := b.svc.Create(ctx, b.p, dns.CreateRequest{ZoneID: testZone, Type: "A", Name: "cdn", Content: "192.0.2.8", Proxied: ptr(true), TTL: ptr(300)})
	if ve, ok := err.(*domain.ValidationError); !ok || ve.Field != "ttl" {
		t.Fatalf("proxied with ttl 300: %v, want a 400 naming ttl", err)
	}
	web := b.create(dns.CreateRequest{Type: "A", Name: "web", Content: "192.0.2.7", Proxied: ptr(true)})
	srv := b.create(dns.CreateRequest{Type: "SRV", Name: "_sip._tcp.voice", Priority: ptr(1), Weight: ptr(5), Port: ptr(5061), Target: "sip.example.com", TTL: ptr(120)})
	caa := b.create(dns.CreateRequest{Type: "CAA", Name: "@", Content: `0 issue "letsencrypt.org"`})
	for _, r := range []dns.Record{web, srv, caa} {
		if r.Status != dns.StatusSynced {
			t.Fatalf("record %s %s: %s %s", r.Type, r.Name, r.Status, r.Error)
		}
	}
	if got := b.cf.Find(testZone, "web.example.com", "A"); len(got) != 1 || got[0].TTL != 1 {
		t.Fatalf("proxied record in Cloudflare %+v", got)
	}
	// Turning proxying on through an update makes the TTL automatic.
	plain := b.create(dns.CreateRequest{Type: "A", Name: "plain", Content: "192.0.2.9", TTL: ptr(600)})
	up, err := b.svc.Update(ctx, b.p, plain.ID, dns.UpdateRequest{Proxied: ptr(true)})
	if err != nil || up.TTL != 1 {
		t.Fatalf("update to proxied: %+v %v", up, err)
	}
	if _, err := b.svc.Update(ctx, b.p, plain.ID, dns.UpdateRequest{TTL: ptr(600)}); err == nil {
		t.Error("a proxied record took ttl 600")
	}
	if r := b.wait(plain.ID); r.Status != dns.StatusSynced {
		t.Fatalf("updated record %+v", r)
	}
	for i := range 2 {
		rep, err := b.svc.RunReconcile(ctx, b.p.OrgID)
		if err != nil {
			t.Fatal(err)
		}
		z := rep.Zones[0]
		if z.Managed != 4 || z.InSync != 4 || len(z.Repaired)+len(z.Recreated) != 0 || len(z.Errors) != 0 {
			t.Errorf("reconcile %d: managed %d, in sync %d, repaired %+v, recreated %+v, errors %v", i+1, z.Managed, z.InSync, z.Repaired, z.Recreated, z.Errors)
		}
	}
	if n := b.cf.CallsOf("update_record") + b.cf.CallsOf("patch_record"); n != 1 {
		t.Errorf("%d updates in Cloudflare, want 1 (the one asked for)", n)
	}
}

// TestRateLimitIsSharedByProcesses: two services (two processes) on one
// database calling Cloudflare with one token together stay within the
// limit Cloudflare enforces: the budget is counted in Postgres, not per
// process, so the fake answers no 429.
func TestRateLimitIsSharedByProcesses(t *testing.T) {
	t.Parallel()
	const limit, window = 22, time.Second
	b := svcSetup(t, svcOpts{noWorker: true})
	b.cf.SetRateLimit(limit, window)
	procs := []*dns.Service{b.newService(dns.Options{RateLimit: limit, RateLimitWindow: window}),
		b.newService(dns.Options{RateLimit: limit, RateLimitWindow: window})}
	const perProc, readers = 30, 3
	errs := make(chan error, len(procs)*readers)
	var wg sync.WaitGroup
	for _, svc := range procs {
		for r := range readers {
			wg.Go(func() {
				for range perProc / readers {
					if _, _, err := svc.ZoneRecords(context.Background(), b.p, testZone, nil, domain.Page{Page: 1, Limit: 10}); err != nil {
						errs <- fmt.Errorf("reader %d: %w", r, err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := b.cf.Refused429(); n != 0 {
		t.Errorf("the fake answered %d calls 429", n)
	}
	if n := b.cf.CallsOf("list_records"); n != len(procs)*perProc {
		t.Errorf("%d zone reads reached the fake, want %d", n, len(procs)*perProc)
	}
}

// TestReconcileLeavesRecordsChangedMeanwhile: a record deleted or changed
// through the API after the reconcile read the zone (here: while the
// reconcile waits for the record's row) is neither recreated nor set back,
// and is not reported as repaired.
func TestReconcileLeavesRecordsChangedMeanwhile(t *testing.T) {
	t.Parallel()
	b := svcSetup(t, svcOpts{})
	ctx := context.Background()
	gone := b.create(dns.CreateRequest{Type: "A", Name: "gone", Content: "192.0.2.10"})
	drift := b.create(dns.CreateRequest{Type: "A", Name: "drift", Content: "192.0.2.11"})

	for _, tc := range []struct {
		name    string
		rec     dns.Record
		outside func() // the drift the reconcile finds
		change  func(tx pgx.Tx) error
	}{
		{"deleted through the API", gone, func() { b.cf.Delete(testZone, gone.CloudflareID) }, func(tx pgx.Tx) error {
			_, err := b.st.Q.MarkDNSRecordDeleting(ctx, tx, store.MarkDNSRecordDeletingParams{OrganizationID: b.p.OrgID, ID: gone.ID})
			return err
		}},
		{"changed through the API", drift, func() {
			b.cf.Change(testZone, drift.CloudflareID, func(r *cffake.Record) { r.Content = "192.0.2.66" })
		}, func(tx pgx.Tx) error {
			_, err := b.st.Q.UpdateDNSRecordDesired(ctx, tx, store.UpdateDNSRecordDesiredParams{OrganizationID: b.p.OrgID, ID: drift.ID,
				Name: drift.Name, Content: "192.0.2.12", Ttl: 1})
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Hold the record's row as an API change would, let the
			// reconcile read the zone and reach the record, then change it.
			tc.outside()
			tx, err := b.pool.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback(ctx)
			if _, err := b.st.Q.LockDNSRecord(ctx, tx, store.LockDNSRecordParams{OrganizationID: b.p.OrgID, ID: tc.rec.ID}); err != nil {
				t.Fatal(err)
			}
			type result struct {
				rep dns.Report
				err error
			}
			done := make(chan result, 1)
			go func() {
				rep, err := b.svc.RunReconcile(ctx, b.p.OrgID)
				done <- result{rep, err}
			}()
			deadline := time.Now().Add(30 * time.Second)
			for waiting := 0; waiting == 0; time.Sleep(10 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("the reconcile never waited for the record's row")
				}
				if err := b.pool.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'").Scan(&waiting); err != nil {
					t.Fatal(err)
				}
			}
			if err := tc.change(tx); err != nil {
				t.Fatal(err)
			}
			if err := tx.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			res := <-done
			if res.err != nil {
				t.Fatal(res.err)
			}
			z := res.rep.Zones[0]
			for _, r := range append(z.Recreated, z.Repaired...) {
				if r.RecordID == tc.rec.ID {
					t.Errorf("reported as repaired: %+v", r)
				}
			}
			if len(z.Errors) != 0 {
				t.Errorf("errors %v", z.Errors)
			}
		})
	}
	if got := b.cf.Find(testZone, "gone.example.com", "A"); len(got) != 0 {
		t.Errorf("the record deleted through the API was recreated: %+v", got)
	}
	if got := b.cf.Find(testZone, "drift.example.com", "A"); len(got) != 1 || got[0].Content != "192.0.2.66" {
		t.Errorf("the record changed through the API was set back by the reconcile: %+v", got)
	}
	if n := b.cf.CallsOf("create_record") + b.cf.CallsOf("update_record") + b.cf.CallsOf("patch_record"); n != 2 {
		t.Errorf("%d writes to Cloudflare, want the 2 creates", n)
	}
}

// TestReconcileRetriesWhenCloudflareIsLimitedOrDown: a 429 snoozes the
// reconcile for Retry-After; a 5xx before anything was repaired fails the
// attempt so River retries it; a 5xx after a repair keeps the repair and
// reports the error.
func TestReconcileRetriesWhenCloudflareIsLimitedOrDown(t *testing.T) {
	t.Parallel()
	b := svcSetup(t, svcOpts{})
	ctx := context.Background()
	one := b.create(dns.CreateRequest{Type: "A", Name: "one", Content: "192.0.2.21"})
	two := b.create(dns.CreateRequest{Type: "A", Name: "two", Content: "192.0.2.22"})
	b.cf.Delete(testZone, one.CloudflareID)
	b.cf.Delete(testZone, two.CloudflareID)
	recreated := func() int {
		return len(b.cf.Find(testZone, "one.example.com", "A")) + len(b.cf.Find(testZone, "two.example.com", "A"))
	}

	t.Run("429 on the zone read snoozes for Retry-After", func(t *testing.T) {
		b.cf.FailNext(1, "list_records", http.StatusTooManyRequests, 7*time.Second)
		_, err := b.svc.RunReconcile(ctx, b.p.OrgID)
		var snooze *rivertype.JobSnoozeError
		if !errors.As(err, &snooze) || snooze.Duration < 7*time.Second {
			t.Fatalf("reconcile answered %v, want a snooze of at least 7s", err)
		}
	})
	t.Run("429 on a write snoozes", func(t *testing.T) {
		b.cf.FailNext(1, "create_record", http.StatusTooManyRequests, 5*time.Second)
		_, err := b.svc.RunReconcile(ctx, b.p.OrgID)
		var snooze *rivertype.JobSnoozeError
		if !errors.As(err, &snooze) || snooze.Duration < 5*time.Second {
			t.Fatalf("reconcile answered %v, want a snooze of at least 5s", err)
		}
	})
	t.Run("5xx before any repair is an error River retries", func(t *testing.T) {
		before := recreated()
		b.cf.FailNext(1, "list_records", http.StatusBadGateway, 0)
		rep, err := b.svc.RunReconcile(ctx, b.p.OrgID)
		var snooze *rivertype.JobSnoozeError
		if err == nil || errors.As(err, &snooze) {
			t.Fatalf("reconcile answered %v, want an error", err)
		}
		if len(rep.Zones) != 1 || len(rep.Zones[0].Errors) != 1 || recreated() != before {
			t.Errorf("report %+v", rep)
		}
		b.cf.FailNext(2, "create_record", http.StatusServiceUnavailable, 0)
		before = recreated()
		if _, err := b.svc.RunReconcile(ctx, b.p.OrgID); err == nil || recreated() != before {
			t.Fatalf("reconcile with every create refused answered %v, %d records recreated", err, recreated()-before)
		}
	})
	t.Run("5xx after a repair keeps the repair", func(t *testing.T) {
		b.cf.FailNext(1, "create_record", http.StatusBadGateway, 0)
		rep, err := b.svc.RunReconcile(ctx, b.p.OrgID)
		if err != nil {
			t.Fatal(err)
		}
		z := rep.Zones[0]
		if len(z.Recreated) != 1 || len(z.Errors) != 1 || recreated() != 1 {
			t.Errorf("recreated %+v, errors %v, %d in Cloudflare", z.Recreated, z.Errors, recreated())
		}
	})
	if _, err := b.svc.RunReconcile(ctx, b.p.OrgID); err != nil || recreated() != 2 {
		t.Errorf("the last reconcile: %v, %d records recreated", err, recreated())
	}
}

// TestForeignRecordMadeSinceTheCopyWasRead: the API checks names against
// the zone's copy; a record made outside shardform after that copy was
// read is found by the worker (the copy being older than 30 s: it reads
// the small zone again, one call) before it creates, or by its list of the
// name before it renames onto it, and fails the record naming it. A reconcile reports a managed record sharing its name and
// type with an unmanaged one.
func TestForeignRecordMadeSinceTheCopyWasRead(t *testing.T) {
	t.Parallel()
	var skew atomic.Int64
	now := func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	b := svcSetup(t, svcOpts{dns: dns.Options{Now: now}})
	ctx := context.Background()
	first := b.create(dns.CreateRequest{Type: "A", Name: "first", Content: "192.0.2.30"}) // reads the copy
	if first.Status != dns.StatusSynced {
		t.Fatalf("first record %+v", first)
	}
	mover := b.create(dns.CreateRequest{Type: "A", Name: "mover", Content: "192.0.2.31"})
	lists := b.cf.CallsOf("list_records")
	if lists != 1 {
		t.Fatalf("%d list calls for two creates on a fresh copy, want 1 (the copy)", lists)
	}
	hand := b.cf.Put(testZone, cffake.Record{Type: "A", Name: "hand.example.com", Content: "198.51.100.5"})
	skew.Store(int64(40 * time.Second)) // the copy is 40 s old: the API still trusts it, the worker asks

	r, err := b.svc.Create(ctx, b.p, dns.CreateRequest{ZoneID: testZone, Type: "A", Name: "hand", Content: "192.0.2.32"})
	if err != nil {
		t.Fatalf("create (the copy does not know the record yet): %v", err)
	}
	got := b.wait(r.ID)
	if got.Status != dns.StatusFailed || !strings.Contains(got.Error, "taken by a record shardform does not manage") || !strings.Contains(got.Error, hand) {
		t.Errorf("create over a foreign record: %s %q", got.Status, got.Error)
	}
	if n := b.cf.CallsOf("list_records"); n != lists+1 {
		t.Errorf("%d list calls for the create on an old copy, want 1 (the small zone read again)", n-lists)
	}
	// The worker's read made the copy young again; a record made after it
	// is found by the rename's list of the name.
	moved := b.cf.Put(testZone, cffake.Record{Type: "A", Name: "taken.example.com", Content: "198.51.100.6"})
	if _, err := b.svc.Update(ctx, b.p, mover.ID, dns.UpdateRequest{Name: ptr("taken")}); err != nil {
		t.Fatalf("rename: %v", err)
	}
	got = b.wait(mover.ID)
	if got.Status != dns.StatusFailed || !strings.Contains(got.Error, moved) {
		t.Errorf("rename onto a foreign record: %s %q", got.Status, got.Error)
	}
	if recs := b.cf.Find(testZone, "hand.example.com", "A"); len(recs) != 1 || recs[0].ID != hand {
		t.Errorf("hand.example.com in Cloudflare: %+v", recs)
	}
	if recs := b.cf.Find(testZone, "mover.example.com", "A"); len(recs) != 1 {
		t.Errorf("the record asked to move onto a foreign name moved: %+v", recs)
	}
	if n := b.cf.CallsOf("create_record"); n != 2 {
		t.Errorf("%d creates in Cloudflare, want 2", n)
	}

	// A foreign record beside a managed one of the same name and type.
	beside := b.cf.Put(testZone, cffake.Record{Type: "A", Name: "first.example.com", Content: "198.51.100.7"})
	rep, err := b.svc.RunReconcile(ctx, b.p.OrgID)
	if err != nil {
		t.Fatal(err)
	}
	z := rep.Zones[0]
	if len(z.Conflicts) != 1 || z.Conflicts[0].RecordID != first.ID || z.Conflicts[0].Foreign.ID != beside {
		t.Errorf("conflicts %+v", z.Conflicts)
	}
}

// TestCreateDuringAnOutageUsesTheOldCopy: when the zone's copy is too old
// and Cloudflare cannot be read (5xx), a create is checked against the old
// copy (and the zone list of the last read) and queued, not refused; the
// worker lists the name in Cloudflare before it creates.
func TestCreateDuringAnOutageUsesTheOldCopy(t *testing.T) {
	t.Parallel()
	var skew atomic.Int64
	now := func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	b := svcSetup(t, svcOpts{dns: dns.Options{Now: now}})
	ctx := context.Background()
	b.create(dns.CreateRequest{Type: "A", Name: "before", Content: "192.0.2.40"})
	skew.Store(int64(10 * time.Minute)) // the zone list and the copy are both too old
	b.cf.FailNext(1, "list_zones", http.StatusBadGateway, 0)
	b.cf.FailNext(1, "list_records", http.StatusServiceUnavailable, 0)
	r, err := b.svc.Create(ctx, b.p, dns.CreateRequest{ZoneID: testZone, Type: "A", Name: "during", Content: "192.0.2.41"})
	if err != nil || r.Status != dns.StatusPending {
		t.Fatalf("create during an outage: %+v, %v", r, err)
	}
	if got := b.wait(r.ID); got.Status != dns.StatusSynced {
		t.Errorf("record created during the outage: %s %q", got.Status, got.Error)
	}
	// The worker's own check still finds a record the old copy does not know.
	hand := b.cf.Put(testZone, cffake.Record{Type: "A", Name: "hand.example.com", Content: "198.51.100.8"})
	b.cf.FailNext(1, "list_records", http.StatusServiceUnavailable, 0)
	skew.Store(int64(20 * time.Minute))
	b.cf.FailNext(1, "list_zones", http.StatusBadGateway, 0)
	r, err = b.svc.Create(ctx, b.p, dns.CreateRequest{ZoneID: testZone, Type: "A", Name: "hand", Content: "192.0.2.42"})
	if err != nil {
		t.Fatalf("second create during an outage: %v", err)
	}
	if got := b.wait(r.ID); got.Status != dns.StatusFailed || !strings.Contains(got.Error, hand) {
		t.Errorf("record over a foreign one made during the outage: %s %q", got.Status, got.Error)
	}
}
