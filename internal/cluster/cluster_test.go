// Package cluster tests shardform as it is deployed: several `shardform
// api` and `shardform worker` processes (the real binary) on one Postgres,
// with processes killed while they work.
package cluster

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shardform/shardform/store/storetest"
)

// cluster is one database, the binary, and the processes started on them.
type cluster struct {
	t     *testing.T
	bin   string
	dir   string
	dbURL string
	key   string
	pool  *pgxpool.Pool
	mu    sync.Mutex
	procs []*proc
}

// proc is one shardform process.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  *syncBuffer
	addr string // API processes: host:port
	done chan struct{}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newCluster builds the binary and names a new database (the first
// process creates and migrates it).
func newCluster(t *testing.T) *cluster {
	t.Helper()
	if _, err := exec.LookPath("terraform"); err != nil {
		t.Skipf("terraform is not installed: %v", err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "shardform")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/shardform/shardform/cmd/shardform").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	c := &cluster{t: t, bin: bin, dir: dir, dbURL: newDatabase(t), key: base64.StdEncoding.EncodeToString(key)}
	t.Cleanup(func() {
		c.mu.Lock()
		procs := c.procs
		c.mu.Unlock()
		for _, p := range procs {
			c.stop(p)
		}
		if c.pool != nil {
			c.pool.Close()
		}
		if t.Failed() {
			for _, p := range procs {
				log := p.log.String()
				if len(log) > 20000 {
					log = log[len(log)-20000:]
				}
				t.Logf("--- %s log (end):\n%s", p.name, log)
			}
		}
	})
	return c
}

// start runs `shardform <cmd>` with the cluster's database and key and
// extra settings; an API process is started on a free port and waited for.
func (c *cluster) start(cmd, name string, extra ...string) *proc {
	c.t.Helper()
	p := &proc{name: name, log: &syncBuffer{}, done: make(chan struct{})}
	env := append(cleanEnv(), "SHARDFORM_DATABASE_URL="+c.dbURL, "SHARDFORM_MASTER_KEY="+c.key,
		"SHARDFORM_DATA_DIR="+filepath.Join(c.dir, name), "SHARDFORM_WORKER_NAME="+name, "SHARDFORM_RATE_LIMIT=100000")
	if cmd == "api" {
		p.addr = freeAddr(c.t)
		env = append(env, "SHARDFORM_ADDR="+p.addr)
	}
	p.cmd = exec.Command(c.bin, cmd)
	p.cmd.Dir = c.dir
	p.cmd.Env = append(env, extra...)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	c.mu.Lock()
	c.procs = append(c.procs, p)
	c.mu.Unlock()
	if cmd == "api" {
		waitReady(c.t, "http://"+p.addr+"/health/live", p)
	}
	if c.pool == nil && cmd == "api" {
		pool, err := pgxpool.New(context.Background(), c.dbURL)
		if err != nil {
			c.t.Fatal(err)
		}
		c.pool = pool
	}
	return p
}

// stop ends a process gracefully (SIGTERM), killing it if it lingers.
func (c *cluster) stop(p *proc) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// kill ends a process with SIGKILL: no shutdown code runs.
func (c *cluster) kill(p *proc) {
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		c.t.Fatal(err)
	}
	<-p.done
}

func (c *cluster) count(query string, args ...any) int {
	c.t.Helper()
	var n int
	if err := c.pool.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		c.t.Fatalf("%s: %v", query, err)
	}
	return n
}

// client calls one API process.
type client struct {
	t     *testing.T
	base  string
	token string
	http  *http.Client
}

func (c *cluster) client(p *proc, token string) *client {
	return &client{t: c.t, base: "http://" + p.addr, token: token, http: &http.Client{Timeout: 30 * time.Second}}
}

// call sends one request and decodes a JSON answer; it returns the status
// (an error only when no answer came).
func (cl *client) call(method, path string, body, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, cl.base+path, rd)
	if err != nil {
		return 0, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if cl.token != "" {
		req.Header.Set("Authorization", "Bearer "+cl.token)
	}
	resp, err := cl.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: %w: %s", method, path, err, raw)
		}
	}
	if resp.StatusCode >= 300 {
		return resp.StatusCode, fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, raw)
	}
	return resp.StatusCode, nil
}

// must is call, failing the test on any error (test goroutine only).
func (cl *client) must(method, path string, body, out any) {
	cl.t.Helper()
	if _, err := cl.call(method, path, body, out); err != nil {
		cl.t.Fatal(err)
	}
}

// signIn bootstraps the first user through api and returns a session token.
func signIn(t *testing.T, cl *client) string {
	t.Helper()
	creds := map[string]string{"email": "ops@example.com", "password": "correct horse battery"}
	cl.must("POST", "/v1/auth/bootstrap", creds, nil)
	var sess struct {
		AccessToken string `json:"access_token"`
	}
	cl.must("POST", "/v1/auth/login", creds, &sess)
	// A long-lived API token: the test outlasts a 15-minute session.
	var tok struct {
		Token string `json:"token"`
	}
	authed := *cl
	authed.token = sess.AccessToken
	authed.must("POST", "/v1/api-tokens", map[string]any{"name": "cluster-test", "expires_in": 86400, "scopes": []string{"provision:read", "provision:write", "nodes:read"}}, &tok)
	return tok.Token
}

// request is one provision request of the test.
type request struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	Error  string `json:"error"`
}

// createAndPlan creates n local requests spread over the clients and
// queues their plans.
func createAndPlan(t *testing.T, clients []*client, n int) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range n {
		cl := clients[i%len(clients)]
		var r request
		cl.must("POST", "/v1/provision", map[string]any{"provider": "local", "region": "local", "instance_type": "local-small", "name": fmt.Sprintf("node-%03d", i)}, &r)
		cl.must("POST", "/v1/provision/"+r.ID+"/plan", nil, nil)
		ids[i] = r.ID
	}
	return ids
}

// waitAll polls until every request has left the running statuses (or
// limit passes) and returns their statuses.
func waitAll(t *testing.T, cl *client, ids []string, limit time.Duration) map[string]request {
	t.Helper()
	deadline := time.Now().Add(limit)
	out := map[string]request{}
	for {
		pending := 0
		for _, id := range ids {
			if r, ok := out[id]; ok && !running(r.Status) {
				continue
			}
			var r request
			if _, err := cl.call("GET", "/v1/provision/"+id, nil, &r); err != nil {
				t.Fatal(err)
			}
			out[id] = r
			if running(r.Status) {
				pending++
			}
		}
		if pending == 0 {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d requests still running after %v", pending, len(ids), limit)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func running(s string) bool { return s == "planning" || s == "applying" || s == "destroying" }

func newDatabase(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("sfcluster_%d", time.Now().UnixNano())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, storetest.ServerURL())
		if err != nil {
			t.Errorf("drop %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop %s: %v", name, err)
		}
	})
	cfg, err := pgx.ParseConfig(storetest.ServerURL())
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("postgres://%s@%s:%d/%s?sslmode=disable", cfg.User, cfg.Host, cfg.Port, name)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// cleanEnv is this process's environment without shardform's and
// Terraform's settings (the mirror is not needed: the local driver uses
// built-ins only).
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "SHARDFORM_") || strings.HasPrefix(kv, "TF_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

func waitReady(t *testing.T, url string, p *proc) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			t.Fatalf("%s exited before it was ready", p.name)
		default:
		}
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s did not answer 200 within 90 s", url)
}
