package sshca

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// lockedBuffer collects a process's output while it runs.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// sshdServer is a real sshd on a loopback port trusting the CA keys in
// trustedPath and refusing the keys in krlPath; both files are read again
// on every login.
type sshdServer struct {
	port        int
	trustedPath string
	krlPath     string
	log         *lockedBuffer
}

// startSSHD starts /usr/sbin/sshd -D -e for the test, or skips the test if
// sshd is not installed (CI installs openssh-server).
func startSSHD(t *testing.T, login string) *sshdServer {
	t.Helper()
	sshd, err := exec.LookPath("sshd")
	if err != nil {
		sshd = "/usr/sbin/sshd"
		if !fileExists(sshd) {
			t.Skip("sshd not found: install openssh-server to run the real sshd test")
		}
	}
	if os.Geteuid() == 0 {
		// sshd running as root wants its privilege separation directory.
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	s := &sshdServer{
		port:        freePort(t),
		trustedPath: filepath.Join(dir, "trusted_user_ca_keys"),
		krlPath:     filepath.Join(dir, "revoked_keys.krl"),
		log:         &lockedBuffer{},
	}
	// No CA trusted and nothing revoked until the test says otherwise.
	replaceFile(t, s.trustedPath, nil)
	empty, err := (&KRL{GeneratedAt: time.Now()}).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	replaceFile(t, s.krlPath, empty)

	hostKey := writePrivateKey(t, dir, "ssh_host_ed25519_key", newKey(t, "ed25519"))
	config := fmt.Sprintf(`Port %d
ListenAddress 127.0.0.1
HostKey %s
PidFile %s
TrustedUserCAKeys %s
RevokedKeys %s
AuthorizedKeysFile none
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
AllowUsers %s
StrictModes no
UsePAM no
LogLevel VERBOSE
`, s.port, hostKey, filepath.Join(dir, "sshd.pid"), s.trustedPath, s.krlPath, login)
	configPath := writeFile(t, dir, "sshd_config", []byte(config))
	if out, err := exec.Command(sshd, "-t", "-f", configPath).CombinedOutput(); err != nil {
		t.Fatalf("sshd -t: %v\n%s", err, out)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, sshd, "-D", "-e", "-f", configPath)
	cmd.Stdout, cmd.Stderr = s.log, s.log
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start sshd: %v", err)
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

	deadline := time.Now().Add(10 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", s.port), time.Second)
		if err == nil {
			conn.Close()
			return s
		}
		select {
		case <-exited:
			t.Fatalf("sshd exited:\n%s", s.log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("sshd not listening on port %d: %v\n%s", s.port, err, s.log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// trust makes the CA keys the sshd's TrustedUserCAKeys.
func (s *sshdServer) trust(t *testing.T, cas ...*Authority) {
	t.Helper()
	var b strings.Builder
	for _, a := range cas {
		b.WriteString(a.PublicKey() + "\n")
	}
	replaceFile(t, s.trustedPath, []byte(b.String()))
}

// revoke makes krl the sshd's RevokedKeys.
func (s *sshdServer) revoke(t *testing.T, krl *KRL) {
	t.Helper()
	b, err := krl.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	replaceFile(t, s.krlPath, b)
}

// login runs ssh with the key and certificate and reports whether it
// logged in and ran true; ssh's output is returned for messages.
func (s *sshdServer) login(t *testing.T, login, keyPath, certPath string) (bool, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, tool(t, "ssh"),
		"-F", "/dev/null",
		"-i", keyPath,
		"-o", "CertificateFile="+certPath,
		"-o", "IdentitiesOnly=yes",
		"-o", "IdentityAgent=none",
		"-o", "BatchMode=yes",
		"-o", "PasswordAuthentication=no",
		"-o", "StrictHostKeyChecking=no",
		"-o", "UserKnownHostsFile=/dev/null",
		"-o", "ConnectTimeout=10",
		"-p", fmt.Sprint(s.port),
		login+"@127.0.0.1", "true")
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("ssh timed out: %s", out)
	}
	return err == nil, string(out)
}

// waitLog reports whether sshd's log after offset contains want, waiting
// briefly for output still in the pipe.
func (s *sshdServer) waitLog(offset int, want string) bool {
	for range 100 {
		if strings.Contains(s.log.String()[offset:], want) {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// replaceFile writes path atomically, so sshd never reads half a file.
func replaceFile(t *testing.T, path string, content []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, content, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// TestSSHDLogin logs in to a real sshd with issued certificates: accepted
// from a trusted CA, refused from another organization's CA, for another
// principal, from outside the source address and once revoked by the KRL;
// after a rotation the old key still logs in until it is retired.
func TestSSHDLogin(t *testing.T) {
	t.Parallel()
	current, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	login := current.Username // tests run as root in CI
	s := startSSHD(t, login)
	dir := t.TempDir()

	orgA := newAuthority(t, newKey(t, "ed25519"), time.Now)
	orgARotated := newAuthority(t, newKey(t, "ecdsa-p256"), time.Now)
	orgB := newAuthority(t, newKey(t, "ed25519"), time.Now)
	s.trust(t, orgARotated, orgA) // active key first, the old one still trusted

	userKey := newKey(t, "ed25519")
	keyPath := writePrivateKey(t, dir, "id_ed25519", userKey)
	issue := func(t *testing.T, a *Authority, serial uint64, principal, forceSource string) string {
		t.Helper()
		policy := DefaultPolicy()
		policy.ForceSourceAddress = forceSource
		req := baseRequest(authorizedKeyOf(t, userKey))
		req.Username = login
		req.Principals = []string{principal}
		req.Serial = serial
		rec, err := a.Sign(policy, req)
		if err != nil {
			t.Fatal(err)
		}
		return writeFile(t, dir, fmt.Sprintf("cert-%s-%d.pub", strings.NewReplacer("/", "_", "+", "-").Replace(a.Fingerprint()[7:]), serial), []byte(rec.AuthorizedKey+"\n"))
	}
	caKey := func(a *Authority) ssh.PublicKey {
		pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(a.PublicKey()))
		if err != nil {
			t.Fatal(err)
		}
		return pub
	}

	active1 := issue(t, orgARotated, 1, login, "")
	active2 := issue(t, orgARotated, 2, login, "127.0.0.0/8")
	old1 := issue(t, orgA, 1, login, "")
	other1 := issue(t, orgB, 1, login, "")
	wrongPrincipal := issue(t, orgARotated, 3, "shardform", "")
	if login == "shardform" {
		t.Fatal("the test needs a login other than shardform")
	}
	elsewhere := issue(t, orgARotated, 4, login, "192.0.2.0/24")

	steps := []struct {
		name    string
		before  func(t *testing.T)
		cert    string
		wantIn  bool
		wantLog string // what sshd logs for the refusal
	}{
		{name: "active CA", cert: active1, wantIn: true},
		{name: "active CA, inside source address", cert: active2, wantIn: true},
		{name: "old CA still trusted after rotation", cert: old1, wantIn: true},
		{name: "other organization's CA", cert: other1, wantLog: "(serial 1) CA ED25519 " + orgB.Fingerprint()},
		{name: "principal is not the login", cert: wrongPrincipal, wantLog: "name is not a listed principal"},
		{name: "outside source address", cert: elsewhere, wantLog: "not from a permitted source address"},
		{
			name: "revoked by the KRL",
			before: func(t *testing.T) {
				s.revoke(t, &KRL{Version: 1, GeneratedAt: time.Now(), Revoked: []RevokedSerials{
					{CA: caKey(orgARotated), Serials: []uint64{1}},
				}})
				out, code := run(t, "ssh-keygen", "-Q", "-f", s.krlPath, active1)
				if code != 1 || !strings.HasSuffix(out, ": REVOKED\n") {
					t.Errorf("ssh-keygen -Q: exit %d %q, want REVOKED", code, out)
				}
			},
			cert:    active1,
			wantLog: "revoked by file " + s.krlPath,
		},
		{name: "not revoked, same CA", cert: active2, wantIn: true},
		{name: "same serial of the old CA not revoked", cert: old1, wantIn: true},
		{name: "old CA retired", before: func(t *testing.T) { s.trust(t, orgARotated) }, cert: old1, wantLog: "(serial 1) CA ED25519 " + orgA.Fingerprint()},
		{name: "active CA after retirement", cert: active2, wantIn: true},
	}
	// The steps share one sshd whose files they change: run in order.
	for _, step := range steps {
		ok := t.Run(step.name, func(t *testing.T) {
			if step.before != nil {
				step.before(t)
			}
			logStart := len(s.log.String())
			in, out := s.login(t, login, keyPath, step.cert)
			if in != step.wantIn {
				t.Errorf("logged in %v, want %v; ssh said: %s", in, step.wantIn, out)
			}
			if !in && !strings.Contains(out, "Permission denied") {
				t.Errorf("refused without \"Permission denied\": %s", out)
			}
			if step.wantLog != "" && !s.waitLog(logStart, step.wantLog) {
				t.Errorf("sshd did not log %q for the refusal; it logged:\n%s", step.wantLog, s.log.String()[logStart:])
			}
		})
		if !ok {
			break
		}
	}

	// sshd logs the key id, so its log names who logged in.
	if log := s.log.String(); !strings.Contains(log, "ID user=alice@example.com org=0b5c7f9e-1d2a-4c3b-9e8f-7a6b5c4d3e2f serial=2 (serial 2)") {
		t.Errorf("sshd log does not name the key id:\n%s", log)
	}
}
