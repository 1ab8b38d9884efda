package bench

import (
	"bytes"
	"cmp"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/crypto/ssh"

	"github.com/shardform/shardform/identity"
	"github.com/shardform/shardform/internal/app"
	"github.com/shardform/shardform/seal"
	"github.com/shardform/shardform/sshca"
	"github.com/shardform/shardform/sshsign"
	"github.com/shardform/shardform/store"
	"github.com/shardform/shardform/store/storetest"
	"github.com/shardform/shardform/worker"
)

// BenchmarkSSHSign is the end-to-end signing rate flat out: POST
// /v1/ssh/certificate with an API token over loopback from 32 concurrent
// keep-alive clients (whatever GOMAXPROCS is), each sending its next request
// as soon as it has its answer, 512 certificates per iteration.
// Each request is validated by the API, queued as an ssh_sign River job,
// signed by a worker (32 on the ssh queue, in the same process), recorded
// with its audit entry, and handed to the waiting API request.
// Reports certificates per second and the median and p99 latency.
func BenchmarkSSHSign(b *testing.B) { benchSSHSign(b, 0) }

// BenchmarkSSHSignAt500 offers the target rate instead: 500
// certificates per second from the same 32 clients, request k due at
// k/500 s (an open loop), each latency counted from when its request was
// due, so a request that had to wait for a free client counts its wait.
func BenchmarkSSHSignAt500(b *testing.B) { benchSSHSign(b, 500) }

// benchSSHSign runs the signing benchmark flat out (rate 0) or at rate
// requests per second.
func benchSSHSign(b *testing.B, rate float64) {
	// The pool default (4 connections on 2 cores) would queue 32 clients
	// and the workers behind each other: room for the clients' requests, the
	// workers and River's own connections.
	cfg, err := pgxpool.ParseConfig(storetest.NewDB(b))
	if err != nil {
		b.Fatal(err)
	}
	cfg.MaxConns = 48
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	st := store.NewStore(pool)
	key := bytes.Repeat([]byte{1}, seal.KeySize)
	sealer, err := seal.New(key)
	if err != nil {
		b.Fatal(err)
	}
	discard := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc, err := sshsign.New(st, sshca.NewVault(sealer), sshsign.Options{})
	if err != nil {
		b.Fatal(err)
	}
	queuePool, err := store.QueuePool(context.Background(), pool)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(queuePool.Close)
	rc, err := worker.NewClient(queuePool, st, worker.Options{Work: true, SSH: svc, SSHWorkers: 32, FetchPollInterval: 50 * time.Millisecond, Logger: discard})
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
	srv, err := app.NewAPI(app.APIConfig{
		Store: st, MasterKey: key, SSH: svc, Identity: identity.Options{AllowRegistration: true},
		RateLimit: 1 << 30, Logger: discard,
	})
	if err != nil {
		b.Fatal(err)
	}
	base := listen(b, srv)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

	post := func(path, bearer string, body any, out any) error {
		buf, _ := json.Marshal(body)
		req, _ := http.NewRequest("POST", base+path, bytes.NewReader(buf))
		req.Header.Set("Content-Type", "application/json")
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		if resp.StatusCode >= 300 {
			return fmt.Errorf("POST %s: %d %s", path, resp.StatusCode, raw)
		}
		if out != nil {
			return json.Unmarshal(raw, out)
		}
		return nil
	}
	must := func(err error) {
		if err != nil {
			b.Fatal(err)
		}
	}
	creds := map[string]string{"email": "bench@example.com", "password": "benchmark password"}
	must(post("/v1/auth/bootstrap", "", creds, nil))
	var sess struct {
		AccessToken string `json:"access_token"`
	}
	must(post("/v1/auth/login", "", creds, &sess))
	var tok struct {
		Token string `json:"token"`
	}
	must(post("/v1/api-tokens", sess.AccessToken, map[string]any{"name": "bench", "scopes": []string{"ssh:sign"}}, &tok))
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	must(err)
	sshPub, err := ssh.NewPublicKey(pub)
	must(err)
	body := map[string]any{"public_key": string(ssh.MarshalAuthorizedKey(sshPub)), "principals": []string{"root"}, "validity_hours": 1}
	// drive sends requests from 32 clients, flat out (rate 0) or at rate
	// per second, until total requests are answered or, with total 0, until
	// stop; it returns what each request's client saw (latency counts from when
	// a request was due).
	const clients = 32
	drive := func(total int64, stop time.Time) []signSample {
		var (
			next    atomic.Int64
			mu      sync.Mutex
			samples = make([]signSample, 0, total)
			wg      sync.WaitGroup
		)
		start := time.Now()
		for range clients {
			wg.Go(func() {
				var mine []signSample
				for {
					k := next.Add(1)
					if total > 0 && k > total || total == 0 && time.Now().After(stop) {
						break
					}
					s := signSample{sent: time.Now()}
					s.due = s.sent
					if rate > 0 {
						s.due = start.Add(time.Duration(float64(k-1) / rate * float64(time.Second)))
						time.Sleep(time.Until(s.due))
						s.sent = time.Now()
					}
					var cert struct {
						ID string `json:"id"`
					}
					if err := post("/v1/ssh/certificate", tok.Token, body, &cert); err != nil {
						b.Error(err)
						return
					}
					s.id, s.answered = cert.ID, time.Now()
					mine = append(mine, s)
				}
				mu.Lock()
				samples = append(samples, mine...)
				mu.Unlock()
			})
		}
		wg.Wait()
		return samples
	}
	// Warm up: the CA key is created and opened on the first request; then
	// the clients sign for two seconds at the measured pace, so the pool's
	// connections are open, each Postgres backend has its caches and
	// prepared statements, and River's producer runs; then River finishes
	// the warm-up's jobs. The steady state of a long-running server, not
	// connection setup or the warm-up's backlog, is timed.
	must(post("/v1/ssh/certificate", tok.Token, body, nil))
	drive(0, time.Now().Add(2*time.Second))
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		var busy int
		must(pool.QueryRow(context.Background(), "SELECT count(*) FROM river_job WHERE state IN ('available', 'running')").Scan(&busy))
		if busy == 0 {
			break
		}
	}
	acquiresBefore, waitBefore := pool.Stat().EmptyAcquireCount(), pool.Stat().EmptyAcquireWaitTime()

	// The clients share the requests of all iterations; one iteration is a
	// batch of perOp certificates, so even -benchtime 1x measures 512.
	const perOp = 512
	b.ResetTimer()
	start := time.Now()
	samples := drive(int64(b.N)*perOp, time.Time{})
	elapsed := time.Since(start)
	b.StopTimer()
	latency := func(s signSample) time.Duration { return s.answered.Sub(s.due) }
	slices.SortFunc(samples, func(x, y signSample) int { return cmp.Compare(latency(x), latency(y)) })
	if len(samples) > 0 {
		b.ReportMetric(float64(len(samples))/elapsed.Seconds(), "certs/s")
		b.ReportMetric(float64(latency(samples[len(samples)/2]).Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(latency(samples[len(samples)*99/100]).Microseconds())/1000, "p99-ms")
		logPhases(b, pool, "all requests", samples)
		logPhases(b, pool, "the slowest 1%", samples[len(samples)*99/100:])
	}
	stat := pool.Stat()
	b.Logf("pool: %d acquires waited for a connection, %s waiting in all; load: %s", stat.EmptyAcquireCount()-acquiresBefore,
		(stat.EmptyAcquireWaitTime() - waitBefore).Round(time.Millisecond), loadavg())
}

// logPhases logs where the requests' time went on average: waiting for a
// free client (at a fixed rate), from sending to the job's insert
// (HTTP, token, rate limit, validation, the insert's transaction start),
// from insert to a worker's pickup, from pickup to the record's statement,
// and from there to the client reading the answer. Postgres' and the
// client's clocks are the same machine's.
func logPhases(b *testing.B, pool *pgxpool.Pool, what string, samples []signSample) {
	ids := make([]string, len(samples))
	sent := make([]time.Time, len(samples))
	answered := make([]time.Time, len(samples))
	var wait time.Duration
	for i, s := range samples {
		ids[i], sent[i], answered[i] = s.id, s.sent, s.answered
		wait += s.sent.Sub(s.due)
	}
	var toInsert, toPickup, toRecord, toAnswer float64
	err := pool.QueryRow(context.Background(), `SELECT
		avg(extract(epoch FROM j.created_at - s.sent)), avg(extract(epoch FROM j.attempted_at - j.created_at)),
		avg(extract(epoch FROM c.created_at - j.attempted_at)), avg(extract(epoch FROM s.answered - c.created_at))
		FROM unnest($1::uuid[], $2::timestamptz[], $3::timestamptz[]) AS s(id, sent, answered)
		JOIN ssh_certificates c ON c.id = s.id JOIN river_job j ON j.id = c.job_id`,
		ids, sent, answered).Scan(&toInsert, &toPickup, &toRecord, &toAnswer)
	if err != nil {
		b.Logf("phases: %v", err)
		return
	}
	ms := func(sec float64) float64 { return sec * 1000 }
	b.Logf("%s (%d), ms on average: %.1f waiting for a client, %.1f to the job's insert, %.1f to pickup, %.1f to the record's statement, %.1f to the answer",
		what, len(samples), float64(wait.Microseconds())/1000/float64(len(samples)), ms(toInsert), ms(toPickup), ms(toRecord), ms(toAnswer))
}

// signSample is one signing request as the client saw it.
type signSample struct {
	id                  string // the certificate's id
	due, sent, answered time.Time
}

// loadavg is the machine's load average, for the log: the figures mean
// little on a busy machine.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}
