package bench

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
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
	e.signIn(b)
	return e
}

func (e *agentEnv) tryPost(path string, header map[string]string, body, out any) error {
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

// signIn creates the first account on the empty server and keeps its
// session's access token.
func (e *agentEnv) signIn(b *testing.B) {
	b.Helper()
	creds := map[string]string{"email": "ops@example.com", "password": "correct horse battery"}
	if err := e.tryPost("/v1/auth/bootstrap", nil, creds, nil); err != nil {
		b.Fatal(err)
	}
	var sess struct {
		AccessToken string `json:"access_token"`
	}
	if err := e.tryPost("/v1/auth/login", nil, creds, &sess); err != nil {
		b.Fatal(err)
	}
	e.access = sess.AccessToken
}

// register joins n nodes (one registration token of n uses, 32 clients at
// once) and answers their agent tokens.
func (e *agentEnv) register(b *testing.B, n int) []string {
	b.Helper()
	var tok struct {
		Token string `json:"token"`
	}
	if err := e.tryPost("/v1/nodes/register-token", map[string]string{"Authorization": "Bearer " + e.access}, map[string]any{"uses": n}, &tok); err != nil {
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
		err = e.tryPost("/v1/agent/register", map[string]string{"Authorization": "Bearer " + tok.Token}, map[string]any{
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

// agentServer is `shardform serve` (the API and its workers in one
// process, built from this checkout) on a fresh database, and the owner's
// session: the server's CPU is its own process's, apart from the client's.
type agentServer struct {
	*agentEnv
	pid int
}

func startAgentServer(b *testing.B) *agentServer {
	b.Helper()
	dir := b.TempDir()
	bin := filepath.Join(dir, "shardform")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/shardform/shardform/cmd/shardform").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SHARDFORM_") && !strings.HasPrefix(kv, "TF_") {
			env = append(env, kv)
		}
	}
	cmd := exec.Command(bin, "serve")
	cmd.Dir = dir
	cmd.Env = append(env, "SHARDFORM_DATABASE_URL="+storetest.NewDB(b), "SHARDFORM_MASTER_KEY="+base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{3}, seal.KeySize)),
		"SHARDFORM_ADDR="+addr, "SHARDFORM_DATA_DIR="+filepath.Join(dir, "data"), "SHARDFORM_RATE_LIMIT=1000000000",
		"SHARDFORM_TERRAFORM_PATH="+filepath.Join(dir, "no-terraform"), "SHARDFORM_LOG_LEVEL=warn")
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	b.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	base := "http://" + addr
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		select {
		case <-exited:
			b.Fatalf("shardform serve exited:\n%s", logs.String())
		default:
		}
		if resp, err := http.Get(base + "/health/live"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			b.Fatal("shardform serve not live after 2 minutes")
		}
	}
	e := &agentEnv{base: base, client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1024, MaxIdleConns: 1024}}}
	e.signIn(b)
	return &agentServer{agentEnv: e, pid: cmd.Process.Pid}
}

// heartbeatInterval is the fleet's heartbeat interval the benchmark
// simulates: 60 s (the agents' default), or SHARDFORM_BENCH_HEARTBEAT_INTERVAL
// (a Go duration, such as 10s) to run it faster; the 1,000 agents are
// spread evenly over it either way.
func heartbeatInterval(b *testing.B) time.Duration {
	raw := os.Getenv("SHARDFORM_BENCH_HEARTBEAT_INTERVAL")
	if raw == "" {
		return time.Minute
	}
	d, err := time.ParseDuration(raw)
	if err != nil || d <= 0 {
		b.Fatalf("SHARDFORM_BENCH_HEARTBEAT_INTERVAL=%q: must be a positive Go duration (10s, 1m)", raw)
	}
	return d
}

// BenchmarkAgentHeartbeat: 1,000 agents heartbeating every interval (60 s;
// see heartbeatInterval), each with an inventory, simulated by this one
// process: agent i sends its heartbeat at i/1,000 of each interval, on its
// own goroutine over shared keep-alive connections; one iteration is one
// interval. The server is `shardform serve` in a process of its own, so its
// CPU (utime+stime of that process) is apart from the client's; the
// Postgres CPU is the change in every postgres process's (and exited
// backends') times, so on a shared machine it includes others' queries.
// Before the heartbeats, the same CPU is measured over an interval in
// which no agent sends anything (the server's River polls and periodic
// jobs, others' queries); the per-heartbeat figures are net of it, the
// gross server figure is reported beside them. Also the p50 and p99
// latency.
func BenchmarkAgentHeartbeat(b *testing.B) {
	e := startAgentServer(b)
	const agents = 1000
	tokens := e.register(b, agents)
	interval := heartbeatInterval(b)
	inv := map[string]any{"system": map[string]any{"uptime_seconds": 1000, "load": []string{"0.10", "0.20", "0.30"}},
		"network": []any{map[string]any{"name": "eth0", "addresses": []string{"192.0.2.1/24"}}},
		"disks":   []any{map[string]any{"mount": "/", "total_gib": 80, "free_gib": 60}}}
	stat := fmt.Sprintf("/proc/%d/stat", e.pid)
	// The server's (and Postgres's) CPU while no agent sends anything, over
	// as long as the run: River's fetch polls, the periodic jobs, the
	// runtime. Subtracted, what is left is the heartbeats' own cost.
	server0, pg0 := procCPU(stat, false), postgresCPU()
	time.Sleep(time.Duration(b.N) * interval)
	idleServer, idlePG := procCPU(stat, false)-server0, postgresCPU()-pg0
	b.ResetTimer()

	lat := make([]time.Duration, agents*b.N)
	var mu sync.Mutex
	var first error
	var wg sync.WaitGroup
	server0, pg0 = procCPU(stat, false), postgresCPU()
	start := time.Now()
	for n := range b.N {
		for i := range agents {
			at := start.Add(time.Duration(n)*interval + interval*time.Duration(i)/agents)
			time.Sleep(time.Until(at))
			wg.Add(1)
			go func() {
				defer wg.Done()
				t0 := time.Now()
				err := e.tryPost("/v1/agent/heartbeat", map[string]string{"X-Agent-Token": tokens[i]}, map[string]any{"version": "bench", "inventory": inv}, nil)
				lat[n*agents+i] = time.Since(t0)
				if err != nil {
					mu.Lock()
					first = err
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	// The last heartbeats end a little after the interval: the idle
	// baseline is scaled to the run's own length.
	elapsed := time.Since(start)
	server, pg := procCPU(stat, false)-server0, postgresCPU()-pg0
	b.StopTimer()
	if first != nil {
		b.Fatal(first)
	}
	scale := elapsed.Seconds() / (time.Duration(b.N) * interval).Seconds()
	netServer := server - time.Duration(float64(idleServer)*scale)
	netPG := pg - time.Duration(float64(idlePG)*scale)
	slices.Sort(lat)
	per := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(len(lat)) }
	b.ReportMetric(per(netServer), "server-cpu-µs/heartbeat")
	b.ReportMetric(per(server), "server-gross-cpu-µs/heartbeat")
	b.ReportMetric(per(netPG), "postgres-cpu-µs/heartbeat")
	b.ReportMetric(per(netServer+netPG), "cpu-µs/heartbeat")
	b.ReportMetric(float64(idleServer.Microseconds())/1000/(time.Duration(b.N)*interval).Seconds(), "server-idle-cpu-ms/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(interval.Seconds(), "interval-s")
}
