package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/shardform/shardform/credentials"
	"github.com/shardform/shardform/dns"
	"github.com/shardform/shardform/identity"
	"github.com/shardform/shardform/internal/app"
	cffake "github.com/shardform/shardform/internal/fake/cloudflare"
	"github.com/shardform/shardform/seal"
	"github.com/shardform/shardform/store"
	"github.com/shardform/shardform/store/storetest"
	"github.com/shardform/shardform/worker"
)

const (
	benchZone  = "023e105f4ecef8ad9ca31a8372d0c353"
	benchToken = "cf-bench-token-0123456789abcdef"
	// Cloudflare allows 1,200 requests per 5 minutes per token; the fake
	// enforces 100 per 0.5 s, so creating 1,000 records needs about ten of
	// its windows, and shardform's budget (SHARDFORM_DNS_RATE_LIMIT, counted
	// in Postgres) is set to the same limit and window.
	benchLimit  = 100
	benchWindow = 500 * time.Millisecond
)

// dnsEnv is a real API with the DNS service and a dns River worker on
// loopback against a fake Cloudflare with its rate limit on.
type dnsEnv struct {
	b      *testing.B
	st     *store.Store
	cf     *cffake.Fake
	base   string
	client *http.Client
	token  string
	orgID  string
	cred   string
}

func newDNSEnv(b *testing.B, workers int) *dnsEnv {
	b.Helper()
	pool := storetest.NewPool(b)
	st := store.NewStore(pool)
	key := bytes.Repeat([]byte{1}, seal.KeySize)
	sealer, err := seal.New(key)
	if err != nil {
		b.Fatal(err)
	}
	cf := cffake.New(b)
	cf.AddZone(benchZone, "example.com")
	cf.AddToken(benchToken)
	cf.SetRateLimit(benchLimit, benchWindow)
	discard := slog.New(slog.NewTextHandler(io.Discard, nil))
	creds := credentials.New(st, sealer, nil)
	svc := dns.New(st, creds, dns.Options{Endpoint: cf.URL, RateLimit: benchLimit, RateLimitWindow: benchWindow, Logger: discard})
	queuePool, err := store.QueuePool(context.Background(), pool)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(queuePool.Close)
	rc, err := worker.NewClient(queuePool, st, worker.Options{Work: true, DNS: svc, DNSWorkers: workers, DNSReconcileInterval: -1,
		FetchPollInterval: 50 * time.Millisecond, Logger: discard})
	if err != nil {
		b.Fatal(err)
	}
	svc.UseQueue(rc)
	if err := rc.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = rc.Stop(ctx)
	})
	srv, err := app.NewAPI(app.APIConfig{Store: st, MasterKey: key, Identity: identity.Options{AllowRegistration: true},
		RateLimit: 1 << 30, Logger: discard, Credentials: creds, DNS: svc})
	if err != nil {
		b.Fatal(err)
	}
	e := &dnsEnv{b: b, st: st, cf: cf, base: listen(b, srv), client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 32}}}
	login := map[string]string{"email": "bench@example.com", "password": "benchmark password"}
	var boot struct {
		Organization struct {
			ID string `json:"id"`
		} `json:"organization"`
	}
	e.do("POST", "/v1/auth/bootstrap", login, &boot)
	e.orgID = boot.Organization.ID
	var sess struct {
		AccessToken string `json:"access_token"`
	}
	e.do("POST", "/v1/auth/login", login, &sess)
	e.token = sess.AccessToken
	var cred struct {
		ID string `json:"id"`
	}
	e.do("POST", "/v1/credentials", map[string]any{"name": "cf", "provider": "cloudflare", "secret": map[string]string{"api_token": benchToken}}, &cred)
	e.cred = cred.ID
	return e
}

func (e *dnsEnv) do(method, path string, body, out any) {
	if err := e.try(method, path, body, out); err != nil {
		e.b.Fatal(err)
	}
}

func (e *dnsEnv) try(method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		buf, _ := json.Marshal(body)
		rd = bytes.NewReader(buf)
	}
	req, _ := http.NewRequest(method, e.base+path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if e.token != "" {
		req.Header.Set("Authorization", "Bearer "+e.token)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, raw)
	}
	if out != nil {
		return json.Unmarshal(raw, out)
	}
	return nil
}

func (e *dnsEnv) count(query string, args ...any) int {
	var n int
	if err := e.st.Pool.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		e.b.Fatal(err)
	}
	return n
}

// BenchmarkDNSCreate creates 1,000 A records through the API (16 clients)
// against the fake with its rate limit on (about ten windows' worth of
// calls), and waits until all are synced. Reported: the time from the first
// POST to the last record synced, the calls the fake refused with 429, the
// share of the fake's limit used over that time, and the Cloudflare API
// calls per record (the zone list and the zone's one
// whole-zone read included; a create needs no list call while the zone's
// copy is fresh).
func BenchmarkDNSCreate(b *testing.B) {
	const records, clients = 1000, 16
	b.StopTimer()
	for i := range b.N {
		e := newDNSEnv(b, 8)
		e.cf.ResetCalls()
		b.StartTimer()
		start := time.Now()
		var wg sync.WaitGroup
		errs := make(chan error, clients)
		for c := range clients {
			wg.Go(func() {
				for n := c; n < records; n += clients {
					body := map[string]any{"zone_id": benchZone, "type": "A", "name": fmt.Sprintf("r%d-%04d", i, n), "content": "192.0.2.1"}
					if err := e.try("POST", "/v1/dns/records", body, nil); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}
		posted := time.Since(start)
		deadline := time.Now().Add(10 * time.Minute)
		for e.count("SELECT count(*) FROM dns_records WHERE status IN ('pending')") > 0 {
			if time.Now().After(deadline) {
				b.Fatal("records still pending after 10 minutes")
			}
			time.Sleep(20 * time.Millisecond)
		}
		elapsed := time.Since(start)
		b.StopTimer()
		if n := e.count("SELECT count(*) FROM dns_records WHERE status = 'synced'"); n != records {
			b.Fatalf("%d of %d records synced", n, records)
		}
		if got := len(e.cf.Records(benchZone)); got != records {
			b.Fatalf("Cloudflare holds %d records, want %d", got, records)
		}
		calls := e.cf.Calls()
		b.ReportMetric(float64(calls)/records, "calls/record")
		b.ReportMetric(float64(e.cf.CallsOf("create_record"))/records, "creates/record")
		b.ReportMetric(float64(e.cf.CallsOf("list_records")), "list_calls")
		b.ReportMetric(float64(e.cf.Refused429()), "429s")
		b.ReportMetric(float64(calls)/(float64(benchLimit)*elapsed.Seconds()/benchWindow.Seconds()), "of_limit")
		b.ReportMetric(elapsed.Seconds(), "s_to_synced")
		b.ReportMetric(posted.Seconds(), "s_to_posted")
		b.Logf("%d records: posted in %v, all synced after %v; %d Cloudflare calls (%d creates, %d list, %d zone lists, %d refused with 429)",
			records, posted, elapsed, calls, e.cf.CallsOf("create_record"), e.cf.CallsOf("list_records"), e.cf.CallsOf("list_zones"), e.cf.Refused429())
	}
}

// BenchmarkDNSReconcile reconciles a zone of 10,000 records of which 1,000
// are managed by the organization (synced rows with their markers in
// Cloudflare); 10 were deleted and 10 changed outside shardform. Reported:
// the Cloudflare calls the reconcile made (the zone in pages of 5,000, then
// one call per drifted record) and its wall time.
func BenchmarkDNSReconcile(b *testing.B) {
	const total, managed, deleted, changed = 10000, 1000, 10, 10
	b.StopTimer()
	for range b.N {
		e := newDNSEnv(b, 4)
		ctx := context.Background()
		// The managed records: rows as a sync leaves them, and their records in Cloudflare.
		rows, err := e.st.Pool.Query(ctx, `INSERT INTO dns_records (organization_id, credential_id, zone_id, zone_name, type, name, content, status, synced_at)
			SELECT $1, $2, $3, 'example.com', 'A', 'm' || lpad(g::text, 5, '0') || '.example.com', '192.0.2.1', 'synced', now()
			FROM generate_series(1, $4) g RETURNING id, name`, e.orgID, e.cred, benchZone, managed)
		if err != nil {
			b.Fatal(err)
		}
		type row struct{ id, name string }
		var mine []row
		for rows.Next() {
			var r row
			if err := rows.Scan(&r.id, &r.name); err != nil {
				b.Fatal(err)
			}
			mine = append(mine, r)
		}
		rows.Close()
		recs := make([]cffake.Record, 0, total)
		ids := make([]string, len(mine))
		for i, r := range mine {
			ids[i] = fmt.Sprintf("%032x", 1<<40+i)
			recs = append(recs, cffake.Record{ID: ids[i], Type: "A", Name: r.name, Content: "192.0.2.1", TTL: 1, Comment: "shardform:" + e.orgID + ":" + r.id})
			if _, err := e.st.Pool.Exec(ctx, "UPDATE dns_records SET cloudflare_id = $1 WHERE id = $2", ids[i], r.id); err != nil {
				b.Fatal(err)
			}
		}
		for i := len(mine); i < total; i++ {
			recs = append(recs, cffake.Record{Type: "TXT", Name: fmt.Sprintf("f%05d.example.com", i), Content: "foreign"})
		}
		e.cf.PutMany(benchZone, recs)
		for i := range deleted {
			e.cf.Delete(benchZone, ids[i])
		}
		for i := deleted; i < deleted+changed; i++ {
			e.cf.Change(benchZone, ids[i], func(r *cffake.Record) { r.Content = "198.51.100.9" })
		}
		e.cf.ResetCalls()
		b.StartTimer()
		start := time.Now()
		e.do("POST", "/v1/dns/reconcile", nil, nil)
		var rep dns.Report
		for {
			if err := e.try("GET", "/v1/dns/reconcile", nil, &rep); err == nil {
				break
			}
			if time.Since(start) > 5*time.Minute {
				b.Fatal("no reconcile report after 5 minutes")
			}
			time.Sleep(10 * time.Millisecond)
		}
		elapsed := time.Since(start)
		b.StopTimer()
		z := rep.Zones[0]
		if z.Records != total-deleted || z.Managed != managed || len(z.Recreated) != deleted || len(z.Repaired) != changed || z.Foreign != total-managed {
			b.Fatalf("report: %d records, %d managed, %d recreated, %d repaired, %d foreign, errors %v",
				z.Records, z.Managed, len(z.Recreated), len(z.Repaired), z.Foreign, z.Errors)
		}
		started, _ := time.Parse(time.RFC3339, rep.StartedAt)
		finished, _ := time.Parse(time.RFC3339, rep.FinishedAt)
		b.ReportMetric(float64(rep.Calls), "calls")
		b.ReportMetric(float64(e.cf.CallsOf("list_records")), "list_calls")
		b.ReportMetric(finished.Sub(started).Seconds(), "s_reconcile")
		b.ReportMetric(elapsed.Seconds(), "s_end_to_end")
		b.Logf("zone of %d records (%d managed): %d calls (%d list pages, %d creates, %d patches); the job took %v, POST to report %v",
			total, managed, rep.Calls, e.cf.CallsOf("list_records"), e.cf.CallsOf("create_record"), e.cf.CallsOf("patch_record"), finished.Sub(started), elapsed)
	}
}
