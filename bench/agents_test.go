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
	"net/http"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/crypto/ssh"

	"github.com/shardform/shardform/agent"
	"github.com/shardform/shardform/identity"
	"github.com/shardform/shardform/internal/app"
	"github.com/shardform/shardform/seal"
	"github.com/shardform/shardform/sshca"
	"github.com/shardform/shardform/sshsign"
	"github.com/shardform/shardform/store"
	"github.com/shardform/shardform/store/storetest"
	"github.com/shardform/shardform/worker"
)

// agentEnv is the API with the SSH CA, its workers and the agents, on
// loopback, and the owner's session.
type agentEnv struct {
	base, access string
	client       *http.Client
}

func newAgentEnv(b *testing.B) *agentEnv {
	b.Helper()
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
	key := bytes.Repeat([]byte{3}, seal.KeySize)
	sealer, err := seal.New(key)
	if err != nil {
		b.Fatal(err)
	}
	discard := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc, err := sshsign.New(st, sshca.NewVault(sealer), sshsign.Options{})
	if err != nil {
		b.Fatal(err)
	}
	rc, err := worker.NewClient(pool, st, worker.Options{Work: true, SSH: svc, SSHWorkers: 32, FetchPollInterval: 50 * time.Millisecond, Logger: discard})
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
		Store: st, MasterKey: key, SSH: svc, Agents: agent.New(st, svc, agent.Options{}),
		Identity:  identity.Options{AllowRegistration: true, Password: identity.PasswordParams{Memory: 1024, Time: 1, Threads: 1}},
		RateLimit: 1 << 30, Logger: discard,
	})
	if err != nil {
		b.Fatal(err)
	}
	e := &agentEnv{base: listen(b, srv), client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
	creds := map[string]string{"email": "ops@example.com", "password": "correct horse battery"}
	if err := e.post("/v1/auth/bootstrap", nil, creds, nil); err != nil {
		b.Fatal(err)
	}
	var sess struct {
		AccessToken string `json:"access_token"`
	}
	if err := e.post("/v1/auth/login", nil, creds, &sess); err != nil {
		b.Fatal(err)
	}
	e.access = sess.AccessToken
	return e
}

func (e *agentEnv) post(path string, header map[string]string, body, out any) error {
	buf, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", e.base+path, bytes.NewReader(buf))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := e.client.Do(req)
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

// register joins n nodes (one registration token of n uses, 32 clients at
// once) and answers their agent tokens.
func (e *agentEnv) register(b *testing.B, n int) []string {
	b.Helper()
	var tok struct {
		Token string `json:"token"`
	}
	if err := e.post("/v1/nodes/register-token", map[string]string{"Authorization": "Bearer " + e.access}, map[string]any{"uses": n}, &tok); err != nil {
		b.Fatal(err)
	}
	out := make([]string, n)
	e.fanOut(b, n, func(i int) error {
		pub, _, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return err
		}
		k, _ := ssh.NewPublicKey(pub)
		var reg struct {
			AgentToken string `json:"agent_token"`
		}
		err = e.post("/v1/agent/register", map[string]string{"Authorization": "Bearer " + tok.Token}, map[string]any{
			"hostname": fmt.Sprintf("node-%d", i), "host_public_keys": []string{strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))},
			"facts": map[string]any{"cpus": 4, "memory_mib": 8192, "disk_gib": 80}}, &reg)
		out[i] = reg.AgentToken
		return err
	})
	return out
}

// fanOut runs fn(0..n-1) from 32 clients and answers each call's latency.
func (e *agentEnv) fanOut(b *testing.B, n int, fn func(i int) error) []time.Duration {
	b.Helper()
	lat := make([]time.Duration, n)
	next := make(chan int)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				start := time.Now()
				err := fn(i)
				lat[i] = time.Since(start)
				if err != nil {
					mu.Lock()
					first = err
					mu.Unlock()
				}
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	if first != nil {
		b.Fatal(first)
	}
	return lat
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkAgentRegister: registrations per second (each signs the node's
// host key through the ssh queue), 32 nodes at a time, 256 per iteration.
func BenchmarkAgentRegister(b *testing.B) {
	e := newAgentEnv(b)
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		e.register(b, 256)
	}
	b.ReportMetric(float64(256*b.N)/time.Since(start).Seconds(), "registrations/s")
}

// BenchmarkAgentHeartbeat: 1,000 agents each sending one heartbeat with an
// inventory per iteration (what a minute of a 1,000-node fleet sends), from
// one process of 32 clients. Reports the process CPU per heartbeat (server
// and client together: an upper bound of the server's) and the p99 latency.
func BenchmarkAgentHeartbeat(b *testing.B) {
	e := newAgentEnv(b)
	tokens := e.register(b, 1000)
	inv := map[string]any{"system": map[string]any{"uptime_seconds": 1000, "load": []string{"0.10", "0.20", "0.30"}},
		"network": []any{map[string]any{"name": "eth0", "addresses": []string{"192.0.2.1/24"}}},
		"disks":   []any{map[string]any{"mount": "/", "total_gib": 80, "free_gib": 60}}}
	var all []time.Duration
	b.ResetTimer()
	cpu0 := cpuTime()
	for range b.N {
		all = append(all, e.fanOut(b, len(tokens), func(i int) error {
			return e.post("/v1/agent/heartbeat", map[string]string{"X-Agent-Token": tokens[i]}, map[string]any{"version": "bench", "inventory": inv}, nil)
		})...)
	}
	cpu := cpuTime() - cpu0
	b.StopTimer()
	slices.Sort(all)
	b.ReportMetric(float64(cpu.Microseconds())/float64(len(all)), "cpu-µs/heartbeat")
	b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
}
