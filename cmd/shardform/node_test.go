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
	code, out, errOut := runCLI(t, nil, "node", "join", "--url", ns.base, "--token", ns.regToken(), "--root", root, "--labels", "rack=r1")
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
// shell (dash) with the same --root option joins like node join: real
// sshd and ssh trust both ways; the refresh it installs picks up a
// revocation; the binary's node refresh reads the state it left.
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
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc/ssh"), 0o755); err != nil {
		t.Fatal(err)
	}
	sshtest.Run(t, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "host", "-f", filepath.Join(root, "etc/ssh/ssh_host_ed25519_key"))
	script := ns.call("GET", "/v1/agent/bootstrap.sh", "", nil, nil)
	if bytes.Contains(script, []byte("shardform_reg_")) && !bytes.Contains(script, []byte("--token shardform_reg_...")) {
		t.Error("the script holds a token")
	}
	sh := func(stdin []byte, args ...string) (int, string) {
		t.Helper()
		cmd := exec.Command(shell, args...)
		if stdin != nil {
			cmd.Stdin = bytes.NewReader(stdin)
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
	tok := ns.regToken()
	args := []string{"-s", "--", "--url", ns.base, "--token", tok, "--root", root}
	if _, err := exec.LookPath("ip"); err != nil {
		args = append(args, "--ipv4", "127.0.0.1") // no ip(8) to find the address the server is reached from
	}
	if code, out := sh(script, args...); code != 0 || !strings.Contains(out, "Joined as node") {
		t.Fatalf("bootstrap.sh: %d\n%s", code, out)
	}
	if code, out := sh(script, "-s", "--", "--url", ns.base, "--token", tok, "--root", root); code != exitRefused {
		t.Errorf("bootstrap.sh with a used token: %d\n%s", code, out)
	}
	if fi, err := os.Stat(filepath.Join(root, "etc/shardform/agent.json")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("agent.json: %v %v", fi, err)
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
	// Revoke; the installed refresh (the same script) makes sshd refuse it.
	var certs struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	ns.call("GET", "/v1/ssh/certificates", ns.access, nil, &certs)
	ns.call("POST", "/v1/ssh/certificates/"+certs.Data[0].ID+"/revoke", ns.access, nil, nil)
	if code, out := sh(nil, filepath.Join(root, "usr/local/sbin/shardform-node"), "refresh", "--root", root); code != 0 || out != "" {
		t.Fatalf("shardform-node refresh: %d %q", code, out)
	}
	if ok, msg := sshd.Connect(t, "root", key, cert, known); ok || !strings.Contains(msg, "Permission denied") {
		t.Errorf("revoked certificate: ok %v: %s", ok, msg)
	}
	// The binary reads the state the script left.
	if code, out, errOut := runCLI(t, nil, "node", "refresh", "--root", root); code != 0 {
		t.Errorf("node refresh after bootstrap.sh: %d %q %q", code, out, errOut)
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
		if code, out := sh(nil, filepath.Join(root, "usr/local/sbin/shardform-node"), "refresh", "--root", root); code != 0 || out != "" {
			t.Fatalf("shardform-node refresh: %d %q", code, out)
		}
		got := certPrincipals(t, hostCert)
		if !slices.Contains(got, "192.0.2.98") || i == 0 && certSerial(t, hostCert) == serial || i == 1 && certSerial(t, hostCert) != serial {
			t.Errorf("refresh %d after the address changed: principals %v, serial %d (before %d)", i+1, got, certSerial(t, hostCert), serial)
		}
		serial = certSerial(t, hostCert)
	}
}

// BenchmarkNodeRefresh: `shardform node refresh` on a node whose trust
// files and host certificate have not changed, in process against the
// server on loopback (the binary's own start is not timed): its wall time
// per refresh and the HTTP requests it makes (a proxy counts them).
func BenchmarkNodeRefresh(b *testing.B) {
	ns := startNodeServer(b)
	target, err := url.Parse(ns.base)
	if err != nil {
		b.Fatal(err)
	}
	var requests atomic.Int64
	proxy := httputil.NewSingleHostReverseProxy(target)
	counting := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		proxy.ServeHTTP(w, r)
	}))
	b.Cleanup(counting.Close)
	root := b.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc/ssh"), 0o755); err != nil {
		b.Fatal(err)
	}
	sshtest.Run(b, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "host", "-f", filepath.Join(root, "etc/ssh/ssh_host_ed25519_key"))
	if code, out, errOut := runCLI(b, nil, "node", "join", "--url", counting.URL, "--token", ns.regToken(), "--root", root); code != 0 {
		b.Fatalf("node join: %d %s %s", code, out, errOut)
	}
	if code, _, errOut := runCLI(b, nil, "node", "refresh", "--root", root); code != 0 { // the ETags are known from here on
		b.Fatalf("node refresh: %d %s", code, errOut)
	}
	requests.Store(0)
	for b.Loop() {
		if code, _, errOut := runCLI(b, nil, "node", "refresh", "--root", root); code != 0 {
			b.Fatalf("node refresh: %d %s", code, errOut)
		}
	}
	b.ReportMetric(float64(requests.Load())/float64(b.N), "requests/refresh")
}
