package bench

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
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

// BenchmarkSSHSign is the end-to-end signing rate: POST /v1/ssh/certificate
// with an API token over loopback from 32 concurrent keep-alive clients.
// Each request is validated by the API, queued as an ssh_sign River job,
// signed by a worker (10 on the ssh queue, in the same process), recorded in
// the transaction that completes the job, and read back by the waiting API.
// Reports certificates per second and the median and p99 latency.
func BenchmarkSSHSign(b *testing.B) {
	// The pool default (4 connections on 2 cores) would queue 32 clients
	// and the workers behind each other.
	cfg, err := pgxpool.ParseConfig(storetest.NewDB(b))
	if err != nil {
		b.Fatal(err)
	}
	cfg.MaxConns = 32
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
	rc, err := worker.NewClient(pool, st, worker.Options{Work: true, SSH: svc, SSHWorkers: 40, FetchPollInterval: 50 * time.Millisecond, Logger: discard})
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
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = srv.App().Listener(ln) }()
	b.Cleanup(func() { _ = srv.App().ShutdownWithTimeout(5 * time.Second) })
	base := "http://" + ln.Addr().String()
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
	// Warm up: the CA key is created and opened on the first request.
	must(post("/v1/ssh/certificate", tok.Token, body, nil))

	const clients = 32
	var (
		mu        sync.Mutex
		latencies = make([]time.Duration, 0, b.N)
	)
	b.SetParallelism((clients + 1) / 2) // × GOMAXPROCS (2 on the reference machine) = 32 clients there
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		var mine []time.Duration
		for pb.Next() {
			t0 := time.Now()
			if err := post("/v1/ssh/certificate", tok.Token, body, nil); err != nil {
				b.Error(err)
				return
			}
			mine = append(mine, time.Since(t0))
		}
		mu.Lock()
		latencies = append(latencies, mine...)
		mu.Unlock()
	})
	elapsed := time.Since(start)
	b.StopTimer()
	slices.Sort(latencies)
	if len(latencies) > 0 {
		b.ReportMetric(float64(len(latencies))/elapsed.Seconds(), "certs/s")
		b.ReportMetric(float64(latencies[len(latencies)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(latencies[len(latencies)*99/100].Microseconds())/1000, "p99-ms")
	}
	var pick, work float64
	_ = pool.QueryRow(context.Background(), "SELECT avg(extract(epoch from attempted_at-created_at))*1000, avg(extract(epoch from finalized_at-attempted_at))*1000 FROM river_job WHERE kind='ssh_sign'").Scan(&pick, &work)
	b.Logf("DEBUG pickup %.1fms work %.1fms", pick, work)
}
