package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/crypto/ssh"

	"github.com/shardform/shardform/agent"
	"github.com/shardform/shardform/identity"
	"github.com/shardform/shardform/internal/app"
	"github.com/shardform/shardform/internal/sshtest"
	"github.com/shardform/shardform/seal"
	"github.com/shardform/shardform/sshca"
	"github.com/shardform/shardform/sshsign"
	"github.com/shardform/shardform/store"
	"github.com/shardform/shardform/store/storetest"
	"github.com/shardform/shardform/worker"
)

// nodeServer is the API with the SSH CA, its worker and the agents, on a
// loopback port; the CA's clock is the real one shifted by offset.
type nodeServer struct {
	t      testing.TB
	base   string
	access string // the admin's session
	sign   string // an API token with ssh:sign
	orgID  string
	offset *atomic.Int64 // nanoseconds added to the CA's clock
	pool   *pgxpool.Pool
}

func startNodeServer(t testing.TB) *nodeServer {
	t.Helper()
	pool := storetest.NewPool(t)
	st := store.NewStore(pool)
	key := bytes.Repeat([]byte{9}, seal.KeySize)
	sealer, err := seal.New(key)
	if err != nil {
		t.Fatal(err)
	}
	ns := &nodeServer{t: t, offset: &atomic.Int64{}, pool: pool}
	clock := func() time.Time { return time.Now().Add(time.Duration(ns.offset.Load())) }
	discard := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc, err := sshsign.New(st, sshca.NewVault(sealer), sshsign.Options{Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	client, err := worker.NewClient(pool, st, worker.Options{Work: true, SSH: svc, FetchPollInterval: 50 * time.Millisecond, Logger: discard})
	if err != nil {
		t.Fatal(err)
	}
	svc.UseQueue(client)
	if err := client.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = client.Stop(ctx)
	})
	oneHour := 1
	srv, err := app.NewAPI(app.APIConfig{
		Store: st, MasterKey: key, SSH: svc, Logger: discard,
		Agents:   agent.New(st, svc, agent.Options{HostValidityHours: &oneHour}),
		Identity: identity.Options{AllowRegistration: true, Password: identity.PasswordParams{Memory: 1024, Time: 1, Threads: 1}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.App().Listener(ln) }()
	t.Cleanup(func() { _ = srv.App().ShutdownWithTimeout(5 * time.Second) })
	ns.base = "http://" + ln.Addr().String()

	creds := map[string]string{"email": "ops@example.com", "password": "correct horse battery"}
	var boot struct {
		Organization struct {
			ID string `json:"id"`
		} `json:"organization"`
	}
	ns.call("POST", "/v1/auth/bootstrap", "", creds, &boot)
	ns.orgID = boot.Organization.ID
	var sess struct {
		AccessToken string `json:"access_token"`
	}
	ns.call("POST", "/v1/auth/login", "", creds, &sess)
	ns.access = sess.AccessToken
	var tok struct {
		Token string `json:"token"`
	}
	ns.call("POST", "/v1/api-tokens", ns.access, map[string]any{"name": "cli", "scopes": []string{"ssh:sign"}}, &tok)
	ns.sign = tok.Token
	return ns
}

// call sends one request and decodes the answer into out; a status of 300
// or more fails the test.
func (ns *nodeServer) call(method, path, bearer string, body, out any) []byte {
	ns.t.Helper()
	var rd io.Reader
	if body != nil {
		buf, _ := json.Marshal(body)
		rd = bytes.NewReader(buf)
	}
	req, _ := http.NewRequest(method, ns.base+path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		ns.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		ns.t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			ns.t.Fatal(err)
		}
	}
	return raw
}

func (ns *nodeServer) regToken() string {
	ns.t.Helper()
	var tok struct {
		Token string `json:"token"`
	}
	ns.call("POST", "/v1/nodes/register-token", ns.access, map[string]any{"name": "metal-1"}, &tok)
	return tok.Token
}

// agentProxy forwards to the server and logs the requests it forwards
// ("METHOD /path"), server-side of the node: what a join or refresh sent.
type agentProxy struct {
	URL string
	mu  sync.Mutex
	log []string
}

func startAgentProxy(t testing.TB, base string) *agentProxy {
	t.Helper()
	target, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	p := &agentProxy{}
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.log = append(p.log, r.Method+" "+r.URL.Path)
		p.mu.Unlock()
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	p.URL = srv.URL
	return p
}

// take answers the requests since the last take.
func (p *agentProxy) take() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := p.log
	p.log = nil
	return out
}

// newNodeRoot is a machine's root with an ed25519 host key (and, systemd
// set, run/systemd/system: systemd runs it).
func newNodeRoot(t testing.TB, systemd bool) string {
	t.Helper()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc/ssh"), 0o755); err != nil {
		t.Fatal(err)
	}
	if systemd {
		if err := os.MkdirAll(filepath.Join(root, "run/systemd/system"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	sshtest.Run(t, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "host", "-f", filepath.Join(root, "etc/ssh/ssh_host_ed25519_key"))
	return root
}

// readFile is a file's text ("" when it cannot be read).
func readFile(t testing.TB, path string) string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Errorf("read %s: %v", path, err)
	}
	return string(raw)
}

// checkRefreshUnits checks the systemd service and timer a join wrote
// under root: the service runs exec (the refresh command line, with
// --root), the timer every minute.
func checkRefreshUnits(t *testing.T, root, exec string) {
	t.Helper()
	service := readFile(t, filepath.Join(root, "etc/systemd/system/shardform-refresh.service"))
	if !strings.Contains(service, "\nExecStart="+exec+"\n") || !strings.Contains(service, "Type=oneshot") {
		t.Errorf("shardform-refresh.service, want ExecStart=%s:\n%s", exec, service)
	}
	timer := readFile(t, filepath.Join(root, "etc/systemd/system/shardform-refresh.timer"))
	for _, want := range []string{"[Timer]", "\nOnUnitActiveSec=60s\n", "\nWantedBy=timers.target\n"} {
		if !strings.Contains(timer, want) {
			t.Errorf("shardform-refresh.timer lacks %q:\n%s", want, timer)
		}
	}
}

// nodeSSHD is a real sshd run from the configuration node join wrote under
// root (its main sshd_config includes root's sshd_config.d).
type nodeSSHD struct {
	*sshtest.SSHD
	log *sshtest.LockedBuffer
}

func startNodeSSHD(t *testing.T, root, login string) *nodeSSHD {
	t.Helper()
	bin := sshtest.Tool(t, "sshd")
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil && os.Geteuid() == 0 {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	if err := os.MkdirAll(filepath.Join(root, "run"), 0o755); err != nil {
		t.Fatal(err)
	}
	config := fmt.Sprintf(`Include %s/etc/ssh/sshd_config.d/*.conf
Port %d
ListenAddress 127.0.0.1
HostKey %s/etc/ssh/ssh_host_ed25519_key
PidFile %s/run/sshd.pid
AuthorizedKeysFile none
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
AllowUsers %s
StrictModes no
UsePAM no
LogLevel VERBOSE
`, root, port, root, root, login)
	path := filepath.Join(root, "etc/ssh/sshd_config")
	if err := os.WriteFile(path, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "-t", "-f", path).CombinedOutput(); err != nil {
		t.Fatalf("sshd -t: %v\n%s", err, out)
	}
	s := &nodeSSHD{SSHD: &sshtest.SSHD{Port: port}, log: &sshtest.LockedBuffer{}}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "-D", "-e", "-f", path)
	cmd.Stdout, cmd.Stderr = s.log, s.log
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cancel()
		<-exited
		if t.Failed() {
			t.Logf("sshd log:\n%s", s.log)
		}
	})
	s.waitListening(t, 1)
	return s
}

// waitListening waits until sshd has said n times that it listens (once
// at start, once more after each reload) and accepts connections.
func (s *nodeSSHD) waitListening(t *testing.T, n int) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); ; {
		if strings.Count(s.log.String(), "Server listening") >= n {
			if conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", s.Port), time.Second); err == nil {
				conn.Close()
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("sshd not listening (%d times wanted):\n%s", n, s.log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// runCLI runs one shardform command line and answers its exit code and output.
func runCLI(t testing.TB, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(t.Context(), args, func(k string) string { return env[k] }, strings.NewReader(""), &out, &errOut)
	return code, out.String(), errOut.String()
}

// TestNodeBornTrusted: a machine joins with a registration token and real
// OpenSSH trusts both ways — ssh with StrictHostKeyChecking=yes and only
// the organization's known-hosts logs in with a certificate from
// `shardform ssh sign`; a revoked certificate is refused after node
// refresh; after a user CA rotation and retirement, a new certificate logs
// in and the old one is refused; an expired host certificate is renewed
// by refresh and ssh trusts the host again.
func TestNodeBornTrusted(t *testing.T) {
	t.Parallel()
	ns := startNodeServer(t)
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	login := u.Username
	if login != "root" {
		requireRoot(t, "sshd must run as root here to log in as root; the policy's default principals are root and shardform")
	}
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc/ssh"), 0o755); err != nil {
		t.Fatal(err)
	}
	sshtest.Run(t, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "host", "-f", filepath.Join(root, "etc/ssh/ssh_host_ed25519_key"))

	// The node joins.
	tok := ns.regToken()
	code, out, errOut := runCLI(t, nil, "node", "join", "--url", ns.base, "--token", tok, "--root", root, "--labels", "rack=r1")
	if code != 0 {
		t.Fatalf("node join: %d %s %s", code, out, errOut)
	}
	if !strings.Contains(out, "Joined as node metal-1") || !strings.Contains(out, "1 host certificate(s) written") {
		t.Errorf("join output:\n%s", out)
	}
	for _, f := range []string{"etc/ssh/shardform_user_ca.pub", "etc/ssh/shardform_revoked.krl", "etc/ssh/ssh_host_ed25519_key-cert.pub", "etc/ssh/sshd_config.d/shardform.conf"} {
		if _, err := os.Stat(filepath.Join(root, f)); err != nil {
			t.Errorf("join did not write %s: %v", f, err)
		}
	}
	if fi, err := os.Stat(filepath.Join(root, "etc/shardform/agent.json")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("agent.json: %v %v", fi, err)
	}
	conf, _ := os.ReadFile(filepath.Join(root, "etc/ssh/sshd_config.d/shardform.conf"))
	if !strings.Contains(string(conf), "HostCertificate "+filepath.Join(root, "etc/ssh/ssh_host_ed25519_key-cert.pub")) {
		t.Errorf("sshd snippet:\n%s", conf)
	}
	// No systemd here (no run/systemd/system): the cron line is printed.
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cron := "\n* * * * * root " + bin + " node refresh --root " + root + "\n"
	if !strings.Contains(out, "No systemd: add this line to /etc/crontab") || !strings.Contains(out, cron) {
		t.Errorf("join output without systemd, want the cron line %q:\n%s", cron, out)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/systemd/system")); err == nil {
		t.Error("systemd units written on a machine without systemd")
	}
	// A re-run with the spent token (a retry loop, or by hand) refreshes
	// with the agent token instead of registering again.
	code, out, errOut = runCLI(t, nil, "node", "join", "--url", ns.base, "--token", tok, "--root", root)
	if code != 0 || !strings.Contains(out, "Already joined as node metal-1") || !strings.Contains(out, cron) {
		t.Errorf("node join again: %d %s %s", code, out, errOut)
	}
	sshd := startNodeSSHD(t, root, login)

	// The engineer's side: a certificate and the organization's known-hosts.
	home := t.TempDir()
	known := filepath.Join(home, "known_hosts")
	if err := os.WriteFile(known, ns.call("GET", "/v1/ssh/known-hosts?organization_id="+ns.orgID, "", nil, nil), 0o644); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"SHARDFORM_URL": ns.base, "SHARDFORM_TOKEN": ns.sign}
	signKey := func(name string) (key, cert string) {
		t.Helper()
		pub := filepath.Join(home, name+".pub")
		if code, out, errOut := runCLI(t, env, "ssh", "sign", "--generate", "--key", pub, "--principal", login); code != 0 {
			t.Fatalf("ssh sign: %d %s %s", code, out, errOut)
		}
		return filepath.Join(home, name), filepath.Join(home, name+"-cert.pub")
	}
	loginOK := func(key, cert string) (bool, string) {
		t.Helper()
		return sshd.Connect(t, login, key, cert, known)
	}
	refresh := func() {
		t.Helper()
		if code, out, errOut := runCLI(t, nil, "node", "refresh", "--root", root); code != 0 || out != "" || errOut != "" {
			t.Fatalf("node refresh: %d %q %q", code, out, errOut)
		}
	}

	keyA, certA := signKey("id_a")
	keyB, certB := signKey("id_b")
	if ok, msg := loginOK(keyA, certA); !ok {
		t.Fatalf("born trusted: ssh refused: %s", msg)
	}

	// Revoke A; refresh: A is refused, B still logs in.
	var certs struct {
		Data []struct {
			ID           string `json:"id"`
			SerialNumber uint64 `json:"serial_number"`
		} `json:"data"`
	}
	ns.call("GET", "/v1/ssh/certificates", ns.access, nil, &certs)
	serialA := certSerial(t, certA)
	revoked := false
	for _, c := range certs.Data {
		if c.SerialNumber == serialA {
			ns.call("POST", "/v1/ssh/certificates/"+c.ID+"/revoke", ns.access, nil, nil)
			revoked = true
		}
	}
	if !revoked {
		t.Fatalf("certificate %d not listed", serialA)
	}
	logAt := len(sshd.log.String())
	refresh()
	if ok, msg := loginOK(keyA, certA); ok || !strings.Contains(msg, "Permission denied") {
		t.Errorf("revoked certificate: ok %v: %s", ok, msg)
	}
	if !waitLog(sshd.log, logAt, "revoked by file") {
		t.Errorf("sshd did not refuse the certificate as revoked:\n%s", sshd.log.String()[logAt:])
	}
	if ok, msg := loginOK(keyB, certB); !ok {
		t.Errorf("unrevoked certificate refused: %s", msg)
	}
	// Nothing changed: refresh again sends no file and changes nothing.
	before, _ := os.ReadFile(filepath.Join(root, "etc/ssh/shardform_revoked.krl"))
	refresh()
	if after, _ := os.ReadFile(filepath.Join(root, "etc/ssh/shardform_revoked.krl")); !bytes.Equal(before, after) {
		t.Error("an unchanged KRL was rewritten")
	}

	// The node's address changed (a power cycle gave it a new public
	// IPv4): the next refresh renews the host certificate for it, once;
	// ssh to the old address no longer trusts the host. Back at its
	// address, the next refresh renews it again.
	hostCert := filepath.Join(root, "etc/ssh/ssh_host_ed25519_key-cert.pub")
	setIPv4 := func(ip string) (was string) {
		t.Helper()
		if err := ns.pool.QueryRow(context.Background(), "SELECT ipv4 FROM nodes WHERE organization_id = $1", ns.orgID).Scan(&was); err != nil {
			t.Fatal(err)
		}
		if _, err := ns.pool.Exec(context.Background(), "UPDATE nodes SET ipv4 = $2 WHERE organization_id = $1", ns.orgID, ip); err != nil {
			t.Fatal(err)
		}
		return was
	}
	serial := certSerial(t, hostCert)
	address := setIPv4("192.0.2.99")
	refresh()
	if got := certPrincipals(t, hostCert); certSerial(t, hostCert) == serial || !slices.Contains(got, "192.0.2.99") || slices.Contains(got, address) {
		t.Errorf("after the address changed from %s the host certificate names %v", address, got)
	}
	serial = certSerial(t, hostCert)
	refresh()
	if certSerial(t, hostCert) != serial {
		t.Error("an unchanged node's host certificate was renewed again")
	}
	sshd.waitListening(t, 2) // reloaded with the new certificate
	if ok, msg := loginOK(keyB, certB); ok || !strings.Contains(msg, "not a listed principal") {
		t.Errorf("ssh to the node's old address %s: ok %v: %s", address, ok, msg)
	}
	setIPv4(address)
	refresh()
	sshd.waitListening(t, 3)
	if ok, msg := loginOK(keyB, certB); !ok {
		t.Errorf("back at its address %s, ssh refused the host: %s", address, msg)
	}

	// Rotate the user CA and retire the old key; refresh: B (old CA) is
	// refused, a new certificate logs in.
	var keys struct {
		Data []struct {
			ID      string `json:"id"`
			Signing bool   `json:"signing"`
		} `json:"data"`
	}
	ns.call("GET", "/v1/ssh/ca/keys", ns.access, nil, &keys)
	ns.call("POST", "/v1/ssh/ca/keys/rotate", ns.access, map[string]any{}, nil)
	for _, k := range keys.Data {
		ns.call("POST", "/v1/ssh/ca/keys/"+k.ID+"/retire", ns.access, nil, nil)
	}
	refresh()
	keyC, certC := signKey("id_c")
	if ok, msg := loginOK(keyC, certC); !ok {
		t.Errorf("certificate of the new CA refused: %s", msg)
	}
	if ok, msg := loginOK(keyB, certB); ok || !strings.Contains(msg, "Permission denied") {
		t.Errorf("certificate of the retired CA: ok %v: %s", ok, msg)
	}

	// The server unreachable: refresh fails in one line and keeps the files.
	state := filepath.Join(root, "etc/shardform/agent.json")
	saved, _ := os.ReadFile(state)
	var st nodeState
	if err := json.Unmarshal(saved, &st); err != nil {
		t.Fatal(err)
	}
	st.URL = "http://127.0.0.1:1"
	broken, _ := json.Marshal(st)
	if err := os.WriteFile(state, broken, 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = runCLI(t, nil, "node", "refresh", "--root", root)
	if code != 1 || out != "" || strings.Count(strings.TrimSpace(errOut), "\n") != 0 || !strings.Contains(errOut, "previous files kept") {
		t.Errorf("refresh with the server down: %d %q %q", code, out, errOut)
	}
	if ok, msg := loginOK(keyC, certC); !ok {
		t.Errorf("after a failed refresh, ssh refused: %s", msg)
	}
	if err := os.WriteFile(state, saved, 0o600); err != nil {
		t.Fatal(err)
	}

	// An expired host certificate: ssh no longer trusts the host; refresh
	// renews it (and reloads sshd), and ssh trusts the host again.
	ns.offset.Store(int64(-3 * time.Hour))
	if err := os.Remove(filepath.Join(root, "etc/ssh/ssh_host_ed25519_key-cert.pub")); err != nil {
		t.Fatal(err)
	}
	refresh() // renews with the CA's clock 3 h behind: already expired
	sshd.waitListening(t, 4)
	if ok, msg := loginOK(keyC, certC); ok || !strings.Contains(msg, "Host key verification failed") {
		t.Errorf("an expired host certificate: ok %v: %s", ok, msg)
	}
	ns.offset.Store(0)
	refresh()
	sshd.waitListening(t, 5)
	if ok, msg := loginOK(keyC, certC); !ok {
		t.Errorf("after the renewal, ssh refused the host: %s", msg)
	}

	// A token the server refuses (the node was deleted) is exit 3.
	st.URL, st.AgentToken = ns.base, "shardform_agent_nope"
	bad, _ := json.Marshal(st)
	if err := os.WriteFile(state, bad, 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := runCLI(t, nil, "node", "refresh", "--root", root); code != exitRefused || !strings.Contains(errOut, "invalid") {
		t.Errorf("refused token: %d %q", code, errOut)
	}
}

// requireRoot skips a test that needs root, or fails it where the tests
// must all run (CI, or SHARDFORM_REQUIRE_ROOT_TESTS set, as .ci/run does):
// a skipped born-trusted test must not pass a CI run unnoticed.
func requireRoot(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("CI") != "" || os.Getenv("SHARDFORM_REQUIRE_ROOT_TESTS") != "" {
		t.Fatalf("not root, and CI or SHARDFORM_REQUIRE_ROOT_TESTS requires this test: %s", why)
	}
	t.Skip(why)
}

// waitLog reports whether log after offset contains want, waiting briefly
// for output still in sshd's pipe.
func waitLog(log *sshtest.LockedBuffer, offset int, want string) bool {
	for range 100 {
		if strings.Contains(log.String()[offset:], want) {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// TestNodeJoinName: --name names a node whose registration token names
// none; the token's name wins over it.
func TestNodeJoinName(t *testing.T) {
	t.Parallel()
	ns := startNodeServer(t)
	join := func(body map[string]any, name string) string {
		t.Helper()
		var tok struct {
			Token string `json:"token"`
		}
		ns.call("POST", "/v1/nodes/register-token", ns.access, body, &tok)
		root := t.TempDir()
		if err := os.MkdirAll(filepath.Join(root, "etc/ssh"), 0o755); err != nil {
			t.Fatal(err)
		}
		sshtest.Run(t, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "host", "-f", filepath.Join(root, "etc/ssh/ssh_host_ed25519_key"))
		code, out, errOut := runCLI(t, nil, "node", "join", "--url", ns.base, "--token", tok.Token, "--root", root, "--name", name)
		if code != 0 {
			t.Fatalf("node join --name %s: %d %s %s", name, code, out, errOut)
		}
		var st nodeState
		raw, err := os.ReadFile(filepath.Join(root, "etc/shardform/agent.json"))
		if err != nil || json.Unmarshal(raw, &st) != nil {
			t.Fatalf("agent.json: %v %s", err, raw)
		}
		var node struct {
			Name string `json:"name"`
		}
		if err := ns.pool.QueryRow(context.Background(), "SELECT name FROM nodes WHERE organization_id = $1 AND id = $2", ns.orgID, st.NodeID).Scan(&node.Name); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, "Joined as node "+node.Name) {
			t.Errorf("join output %q for node %s", out, node.Name)
		}
		return node.Name
	}
	if got := join(map[string]any{}, "db-7"); got != "db-7" {
		t.Errorf("--name db-7 made node %q", got)
	}
	if got := join(map[string]any{"name": "metal-9"}, "db-8"); got != "metal-9" {
		t.Errorf("a token named metal-9 with --name db-8 made node %q", got)
	}
}

func certPrincipals(t *testing.T, path string) []string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	return pub.(*ssh.Certificate).ValidPrincipals
}

func certSerial(t *testing.T, path string) uint64 {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	return pub.(*ssh.Certificate).Serial
}

// TestNodeJoinRefreshUnits: node join on a machine systemd runs writes
// the refresh service (ExecStart with --root) and its timer (every
// minute); the trust files come from the registration answer, so the join
// is one request and the first refresh too; a join whose writes failed
// after registering has its refresh installed, and a re-run with the
// spent token finishes it.
func TestNodeJoinRefreshUnits(t *testing.T) {
	t.Parallel()
	ns := startNodeServer(t)
	p := startAgentProxy(t, ns.base)
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}

	t.Run("systemd", func(t *testing.T) {
		root := newNodeRoot(t, true)
		p.take()
		code, out, errOut := runCLI(t, nil, "node", "join", "--url", p.URL, "--token", ns.regToken(), "--root", root)
		if code != 0 {
			t.Fatalf("node join: %d %s %s", code, out, errOut)
		}
		if got := p.take(); !slices.Equal(got, []string{"POST /v1/agent/register"}) {
			t.Errorf("join's requests: %v, want the registration alone (the trust files are in its answer)", got)
		}
		if strings.Contains(out, "crontab") || !strings.Contains(out, "Wrote shardform-refresh.timer in "+filepath.Join(root, "etc/systemd/system")) {
			t.Errorf("join output with systemd:\n%s", out)
		}
		checkRefreshUnits(t, root, bin+" node refresh --root "+root)
		want := string(ns.call("GET", "/v1/ssh/ca-public-key?organization_id="+ns.orgID, "", nil, nil))
		if got := readFile(t, filepath.Join(root, "etc/ssh/shardform_user_ca.pub")); got != want || want == "" {
			t.Errorf("user CA keys from the registration: %q, want %q", got, want)
		}
		if krl := readFile(t, filepath.Join(root, "etc/ssh/shardform_revoked.krl")); !strings.HasPrefix(krl, "SSHKRL\n\x00") {
			t.Errorf("KRL from the registration: %q", krl)
		}
		if code, out, errOut := runCLI(t, nil, "node", "refresh", "--root", root); code != 0 || out != "" {
			t.Fatalf("node refresh: %d %q %q", code, out, errOut)
		}
		if got := p.take(); !slices.Equal(got, []string{"POST /v1/agent/heartbeat"}) {
			t.Errorf("the first refresh after the join: %v, want the heartbeat alone", got)
		}
	})

	t.Run("rerun after a failure", func(t *testing.T) {
		root := newNodeRoot(t, false)
		krl := filepath.Join(root, "etc/ssh/shardform_revoked.krl")
		if err := os.MkdirAll(filepath.Join(krl, "x"), 0o755); err != nil { // the KRL cannot be written
			t.Fatal(err)
		}
		tok := ns.regToken()
		code, out, errOut := runCLI(t, nil, "node", "join", "--url", p.URL, "--token", tok, "--root", root)
		if code != exitFail || !strings.Contains(errOut, "joined, but") || !strings.Contains(errOut, "node refresh every minute finishes it") {
			t.Fatalf("node join with the KRL unwritable: %d %q %q", code, out, errOut)
		}
		if !strings.Contains(out, "\n* * * * * root "+bin+" node refresh --root "+root+"\n") {
			t.Errorf("the refresh was not installed before the failure:\n%s", out)
		}
		if !strings.Contains(readFile(t, filepath.Join(root, "etc/shardform/agent.json")), "shardform_agent_") {
			t.Error("no agent token saved")
		}
		if _, err := os.Stat(filepath.Join(root, "etc/ssh/sshd_config.d/shardform.conf")); err == nil {
			t.Error("sshd told of a RevokedKeys file that is missing")
		}
		if err := os.RemoveAll(krl); err != nil {
			t.Fatal(err)
		}
		code, out, errOut = runCLI(t, nil, "node", "join", "--url", p.URL, "--token", tok, "--root", root)
		if code != 0 || !strings.Contains(out, "Already joined as node metal-1") {
			t.Fatalf("node join again with the spent token: %d %q %q", code, out, errOut)
		}
		if krl := readFile(t, krl); !strings.HasPrefix(krl, "SSHKRL\n\x00") {
			t.Errorf("KRL after the re-run: %q", krl)
		}
		if conf := readFile(t, filepath.Join(root, "etc/ssh/sshd_config.d/shardform.conf")); !strings.Contains(conf, "RevokedKeys "+krl) {
			t.Errorf("sshd snippet after the re-run:\n%s", conf)
		}
		if code, _, errOut := runCLI(t, nil, "node", "join", "--url", p.URL, "--token", tok, "--root", newNodeRoot(t, false)); code != exitRefused {
			t.Errorf("the spent token on another machine: %d %q", code, errOut)
		}
	})
}

func TestNodeJoinUsage(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no subcommand", []string{"node"}, exitUsage, "a subcommand is required"},
		{"unknown", []string{"node", "nope"}, exitUsage, `unknown subcommand "nope"`},
		{"no url", []string{"node", "join", "--token", "x"}, exitUsage, "--url must be"},
		{"no token", []string{"node", "join", "--url", "http://127.0.0.1:1"}, exitUsage, "--token is required"},
		{"bad label", []string{"node", "join", "--url", "http://127.0.0.1:1", "--token", "x", "--labels", "nokv"}, exitUsage, "is not k=v"},
		{"no host keys", []string{"node", "join", "--url", "http://127.0.0.1:1", "--token", "x", "--root", t.TempDir()}, exitFail, "no host keys"},
		{"not joined", []string{"node", "refresh", "--root", t.TempDir()}, exitFail, "has not joined"},
		{"help", []string{"node", "join", "--help"}, exitOK, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := runCLI(t, nil, tt.args...)
			if code != tt.code || !strings.Contains(errOut, tt.want) {
				t.Errorf("%v: %d %q, want %d %q", tt.args, code, errOut, tt.code, tt.want)
			}
		})
	}
}

// TestNodeBootstrapScript: GET /v1/agent/bootstrap.sh run by a plain POSIX
// shell (dash) with the same --root option joins like node join: the
// trust files from the registration answer (no other request), real sshd
// and ssh trust both ways; the refresh it installs sends the inventory
// (GET /v1/nodes/{id}/inventory/* show it), picks up a revocation and is
// one request when nothing changed (the ETags kept in agent.json); the
// binary's node refresh reads the state it left; a re-run with the spent
// token refreshes; with systemd it writes the service and timer, without
// it prints the cron line; a join whose writes failed after registering
// has its refresh installed, and a re-run finishes it.
func TestNodeBootstrapScript(t *testing.T) {
	t.Parallel()
	ns := startNodeServer(t)
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	if u.Username != "root" {
		requireRoot(t, "sshd must run as root here to log in as root")
	}
	shell := sshtest.Tool(t, "dash")
	p := startAgentProxy(t, ns.base)
	root := newNodeRoot(t, false)
	script := ns.call("GET", "/v1/agent/bootstrap.sh", "", nil, nil)
	if bytes.Contains(script, []byte("shardform_reg_")) && !bytes.Contains(script, []byte("--token shardform_reg_...")) {
		t.Error("the script holds a token")
	}
	var path []string // PATH=, when set
	sh := func(stdin []byte, args ...string) (int, string) {
		t.Helper()
		cmd := exec.Command(shell, args...)
		if stdin != nil {
			cmd.Stdin = bytes.NewReader(stdin)
		}
		if path != nil {
			cmd.Env = append(os.Environ(), "PATH="+strings.Join(path, ":"))
		}
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return code, string(out)
	}
	join := func(root, tok string) (int, string) {
		t.Helper()
		args := []string{"-s", "--", "--url", p.URL, "--token", tok, "--root", root, "--labels", "rack=r1,role=a \"b\\"}
		if _, err := exec.LookPath("ip"); err != nil {
			args = append(args, "--ipv4", "127.0.0.1") // no ip(8) to find the address the server is reached from
		}
		return sh(script, args...)
	}
	var node string
	nodeRefresh := func(want ...string) {
		t.Helper()
		p.take()
		if code, out := sh(nil, node, "refresh", "--root", root); code != 0 || out != "" {
			t.Fatalf("shardform-node refresh: %d %q", code, out)
		}
		if want != nil {
			if got := p.take(); !slices.Equal(got, want) {
				t.Errorf("shardform-node refresh sent %v, want %v", got, want)
			}
		}
	}
	heartbeat := "POST /v1/agent/heartbeat"
	for _, bad := range [][]string{
		{"--url", p.URL, "--token", "shardform_reg_x\r\nX-Injected: 1", "--root", root},
		{"--url", p.URL, "--token", "shardform_reg_x", "--root", root, "--labels", "rack=r1,nokv"},
		{"--url", "http://\"127.0.0.1", "--token", "shardform_reg_x", "--root", root},
		{"--url", p.URL, "--token"},
	} {
		if code, out := sh(script, append([]string{"-s", "--"}, bad...)...); code != exitUsage {
			t.Errorf("bootstrap.sh %q: %d, want %d (usage)\n%s", bad, code, exitUsage, out)
		}
	}
	if got := p.take(); len(got) != 0 {
		t.Errorf("wrong usage sent %v", got)
	}

	node = filepath.Join(root, "usr/local/sbin/shardform-node")
	tok := ns.regToken()
	p.take()
	code, out := join(root, tok)
	if code != 0 || !strings.Contains(out, "Joined as node metal-1.") {
		t.Fatalf("bootstrap.sh: %d\n%s", code, out)
	}
	if got := p.take(); !slices.Equal(got, []string{"GET /v1/agent/bootstrap.sh", "POST /v1/agent/register"}) {
		t.Errorf("the join sent %v, want the script and the registration alone (the trust files are in its answer)", got)
	}
	want := string(ns.call("GET", "/v1/ssh/ca-public-key?organization_id="+ns.orgID, "", nil, nil))
	if got := readFile(t, filepath.Join(root, "etc/ssh/shardform_user_ca.pub")); got != want || want == "" {
		t.Errorf("user CA keys from the registration: %q, want %q", got, want)
	}
	if krl := readFile(t, filepath.Join(root, "etc/ssh/shardform_revoked.krl")); !strings.HasPrefix(krl, "SSHKRL\n\x00") {
		t.Errorf("KRL from the registration: %q", krl)
	}
	cron := "\n* * * * * root " + node + " refresh --root " + root + "/\n"
	if !strings.Contains(out, "No systemd: add this line to /etc/crontab") || !strings.Contains(out, cron) {
		t.Errorf("join output without systemd, want the cron line %q:\n%s", cron, out)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/systemd/system")); err == nil {
		t.Error("systemd units written on a machine without systemd")
	}
	var labels, nodeID string
	if err := ns.pool.QueryRow(context.Background(), "SELECT id::text, labels::text FROM nodes WHERE organization_id = $1", ns.orgID).Scan(&nodeID, &labels); err != nil {
		t.Fatal(err)
	}
	if labels != `{"rack": "r1", "role": "a \"b\\"}` {
		t.Errorf("labels from --labels: %s", labels)
	}
	state := filepath.Join(root, "etc/shardform/agent.json")
	if fi, err := os.Stat(state); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("agent.json: %v %v", fi, err)
	}
	var st nodeState
	if err := json.Unmarshal([]byte(readFile(t, state)), &st); err != nil || st.NodeID != nodeID || st.NodeName != "metal-1" || st.OrganizationID != ns.orgID ||
		!strings.HasPrefix(st.AgentToken, "shardform_agent_") || st.URL != p.URL || len(st.ETags["user_ca"]) != 34 || len(st.ETags["krl"]) != 34 {
		t.Errorf("agent.json: %+v %v", st, err)
	}
	// A re-run with the spent token (cloud-init's retry loop) refreshes
	// with the agent token: the heartbeat alone, the ETags of the
	// registration being current.
	if code, out := join(root, tok); code != 0 || !strings.Contains(out, "Already joined as node metal-1: refreshed.") || !strings.Contains(out, cron) {
		t.Errorf("bootstrap.sh again with the spent token: %d\n%s", code, out)
	}
	if got := p.take(); !slices.Equal(got, []string{heartbeat}) {
		t.Errorf("the re-run sent %v, want the heartbeat alone", got)
	}
	if code, out := join(newNodeRoot(t, false), tok); code != exitRefused {
		t.Errorf("bootstrap.sh with a used token on another machine: %d\n%s", code, out)
	}

	// The inventory of the refresh's heartbeat.
	type inventory struct {
		Version   string `json:"version"`
		Inventory struct {
			System struct {
				Arch           string   `json:"arch"`
				CPUs           int      `json:"cpus"`
				OS             string   `json:"os"`
				Kernel         string   `json:"kernel"`
				MemoryTotalMiB int      `json:"memory_total_mib"`
				Load           []string `json:"load"`
			} `json:"system"`
			Network []struct {
				Name      string   `json:"name"`
				MTU       int      `json:"mtu"`
				Up        bool     `json:"up"`
				Addresses []string `json:"addresses"`
			} `json:"network"`
			Disks []struct {
				Mount    string `json:"mount"`
				TotalGiB int    `json:"total_gib"`
			} `json:"disks"`
		} `json:"inventory"`
	}
	var inv inventory
	ns.call("GET", "/v1/nodes/"+nodeID+"/inventory", ns.access, nil, &inv)
	sys := inv.Inventory.System
	if inv.Version != "bootstrap.sh" || sys.Arch == "" || sys.CPUs < 1 || sys.OS == "" || sys.Kernel == "" || sys.MemoryTotalMiB < 1 || len(sys.Load) != 3 {
		t.Errorf("inventory system: %+v (version %q)", sys, inv.Version)
	}
	if d := inv.Inventory.Disks; len(d) != 1 || d[0].Mount != "/" || d[0].TotalGiB < 1 {
		t.Errorf("inventory disks: %+v", d)
	}
	if _, err := exec.LookPath("ip"); err == nil {
		lo := false
		for _, n := range inv.Inventory.Network {
			lo = lo || n.Name == "lo" && n.Up && n.MTU > 0 && slices.Contains(n.Addresses, "127.0.0.1/8")
		}
		if !lo {
			t.Errorf("inventory network without lo 127.0.0.1/8: %+v", inv.Inventory.Network)
		}
	}
	for _, part := range []string{"system", "network", "disks"} {
		var one struct {
			Inventory map[string]json.RawMessage `json:"inventory"`
		}
		ns.call("GET", "/v1/nodes/"+nodeID+"/inventory/"+part, ns.access, nil, &one)
		if v := string(one.Inventory[part]); len(one.Inventory) != 1 || v == "" || v == "null" || v == "[]" {
			t.Errorf("GET inventory/%s: %v", part, one.Inventory)
		}
	}

	sshd := startNodeSSHD(t, root, "root")
	home := t.TempDir()
	known := filepath.Join(home, "known_hosts")
	if err := os.WriteFile(known, ns.call("GET", "/v1/ssh/known-hosts?organization_id="+ns.orgID, "", nil, nil), 0o644); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"SHARDFORM_URL": ns.base, "SHARDFORM_TOKEN": ns.sign}
	pub := filepath.Join(home, "id.pub")
	if code, out, errOut := runCLI(t, env, "ssh", "sign", "--generate", "--key", pub, "--principal", "root"); code != 0 {
		t.Fatalf("ssh sign: %d %s %s", code, out, errOut)
	}
	key, cert := filepath.Join(home, "id"), filepath.Join(home, "id-cert.pub")
	if ok, msg := sshd.Connect(t, "root", key, cert, known); !ok {
		t.Fatalf("born trusted by bootstrap.sh: ssh refused: %s", msg)
	}
	// Revoke; the installed refresh (the same script) fetches the KRL
	// alone (the CA keys are unchanged) and sshd refuses it; the next
	// refresh, nothing changed, is the heartbeat alone.
	var certs struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	ns.call("GET", "/v1/ssh/certificates", ns.access, nil, &certs)
	ns.call("POST", "/v1/ssh/certificates/"+certs.Data[0].ID+"/revoke", ns.access, nil, nil)
	nodeRefresh(heartbeat, "GET /v1/agent/ssh/krl")
	if ok, msg := sshd.Connect(t, "root", key, cert, known); ok || !strings.Contains(msg, "Permission denied") {
		t.Errorf("revoked certificate: ok %v: %s", ok, msg)
	}
	nodeRefresh(heartbeat)
	// The binary reads the state the script left, ETags included.
	if code, out, errOut := runCLI(t, nil, "node", "refresh", "--root", root); code != 0 {
		t.Errorf("node refresh after bootstrap.sh: %d %q %q", code, out, errOut)
	}
	if got := p.take(); !slices.Equal(got, []string{heartbeat}) {
		t.Errorf("node refresh after bootstrap.sh sent %v, want the heartbeat alone", got)
	}
	// The node's address changed (a power cycle gave it a new public
	// IPv4): the script's next refresh renews the host certificate for
	// it, once.
	hostCert := filepath.Join(root, "etc/ssh/ssh_host_ed25519_key-cert.pub")
	serial := certSerial(t, hostCert)
	if _, err := ns.pool.Exec(context.Background(), "UPDATE nodes SET ipv4 = '192.0.2.98' WHERE organization_id = $1", ns.orgID); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		nodeRefresh()
		got := certPrincipals(t, hostCert)
		if !slices.Contains(got, "192.0.2.98") || i == 0 && certSerial(t, hostCert) == serial || i == 1 && certSerial(t, hostCert) != serial {
			t.Errorf("refresh %d after the address changed: principals %v, serial %d (before %d)", i+1, got, certSerial(t, hostCert), serial)
		}
		serial = certSerial(t, hostCert)
	}

	// A machine systemd runs, whose user CA file cannot be written at the
	// join: the refresh is installed all the same (service and timer), sshd
	// is not told of trust files that are missing, and a re-run with the
	// spent token finishes the join.
	root2 := newNodeRoot(t, true)
	blocked := filepath.Join(root2, "etc/ssh/shardform_user_ca.pub.new")
	if err := os.MkdirAll(filepath.Join(blocked, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	tok2 := ns.regToken()
	code, out = join(root2, tok2)
	if code != exitFail || !strings.Contains(out, "the refresh every minute finishes it") || strings.Contains(out, "crontab") ||
		!strings.Contains(out, "Wrote shardform-refresh.timer in "+filepath.Join(root2, "etc/systemd/system")) {
		t.Errorf("bootstrap.sh with the user CA file unwritable: %d\n%s", code, out)
	}
	checkRefreshUnits(t, root2, filepath.Join(root2, "usr/local/sbin/shardform-node")+" refresh --root "+root2+"/")
	if _, err := os.Stat(filepath.Join(root2, "etc/ssh/sshd_config.d/shardform.conf")); err == nil {
		t.Error("sshd told of a user CA file that is missing")
	}
	if err := os.RemoveAll(blocked); err != nil {
		t.Fatal(err)
	}
	if code, out := join(root2, tok2); code != 0 || !strings.Contains(out, "Already joined as node metal-1: refreshed.") {
		t.Errorf("bootstrap.sh again with the spent token: %d\n%s", code, out)
	}
	if got := readFile(t, filepath.Join(root2, "etc/ssh/shardform_user_ca.pub")); got != want {
		t.Errorf("user CA keys after the re-run: %q, want %q", got, want)
	}
	if conf := readFile(t, filepath.Join(root2, "etc/ssh/sshd_config.d/shardform.conf")); !strings.Contains(conf, "TrustedUserCAKeys "+filepath.Join(root2, "etc/ssh/shardform_user_ca.pub")) {
		t.Errorf("sshd snippet after the re-run:\n%s", conf)
	}

	// The same join and refresh by busybox's sh and tools alone (beside
	// curl and ssh-keygen), where busybox is installed.
	bb, err := exec.LookPath("busybox")
	if err != nil {
		t.Log("no busybox: the join by busybox's sh and tools is not tried")
		return
	}
	bin := t.TempDir()
	for _, a := range []string{"sh", "sed", "grep", "tr", "awk", "cut", "ls", "head", "sort", "base64", "df", "mv", "chmod", "mkdir", "rm", "cat", "find", "date", "hostname", "uname", "ip", "kill"} {
		if err := os.Symlink(bb, filepath.Join(bin, a)); err != nil {
			t.Fatal(err)
		}
	}
	for _, tool := range []string{"curl", "ssh-keygen"} {
		if err := os.Symlink(sshtest.Tool(t, tool), filepath.Join(bin, tool)); err != nil {
			t.Fatal(err)
		}
	}
	root = newNodeRoot(t, false)
	node = filepath.Join(root, "usr/local/sbin/shardform-node")
	shell, path = filepath.Join(bin, "sh"), []string{bin}
	p.take()
	if code, out := join(root, ns.regToken()); code != 0 || !strings.Contains(out, "Joined as node metal-1.") {
		t.Fatalf("bootstrap.sh by busybox: %d\n%s", code, out)
	}
	if got := p.take(); !slices.Equal(got, []string{"GET /v1/agent/bootstrap.sh", "POST /v1/agent/register"}) {
		t.Errorf("the join by busybox sent %v", got)
	}
	if got := readFile(t, filepath.Join(root, "etc/ssh/shardform_user_ca.pub")); got != want {
		t.Errorf("user CA keys from the registration, by busybox: %q, want %q", got, want)
	}
	if krl := readFile(t, filepath.Join(root, "etc/ssh/shardform_revoked.krl")); !strings.HasPrefix(krl, "SSHKRL\n\x00") {
		t.Errorf("KRL from the registration, by busybox: %q", krl)
	}
	nodeRefresh(heartbeat)
	var bst nodeState
	if err := json.Unmarshal([]byte(readFile(t, filepath.Join(root, "etc/shardform/agent.json"))), &bst); err != nil {
		t.Fatal(err)
	}
	var binv inventory
	ns.call("GET", "/v1/nodes/"+bst.NodeID+"/inventory", ns.access, nil, &binv)
	if sys := binv.Inventory.System; binv.Version != "bootstrap.sh" || sys.CPUs < 1 || sys.MemoryTotalMiB < 1 || len(binv.Inventory.Disks) != 1 || len(binv.Inventory.Network) == 0 {
		t.Errorf("inventory sent by busybox: %+v", binv)
	}
}

// BenchmarkNodeRefresh: `shardform node refresh` on a node whose trust
// files and host certificate have not changed, in process against the
// server on loopback (the binary's own start is not timed): its wall time
// per refresh and the HTTP requests it makes (a proxy counts them).
func BenchmarkNodeRefresh(b *testing.B) {
	ns := startNodeServer(b)
	p := startAgentProxy(b, ns.base)
	root := newNodeRoot(b, false)
	if code, out, errOut := runCLI(b, nil, "node", "join", "--url", p.URL, "--token", ns.regToken(), "--root", root); code != 0 {
		b.Fatalf("node join: %d %s %s", code, out, errOut)
	}
	if code, _, errOut := runCLI(b, nil, "node", "refresh", "--root", root); code != 0 { // the ETags are known since the join; warm up
		b.Fatalf("node refresh: %d %s", code, errOut)
	}
	p.take()
	for b.Loop() {
		if code, _, errOut := runCLI(b, nil, "node", "refresh", "--root", root); code != 0 {
			b.Fatalf("node refresh: %d %s", code, errOut)
		}
	}
	b.ReportMetric(float64(len(p.take()))/float64(b.N), "requests/refresh")
}
