// Package sshtest runs real OpenSSH for tests: the ssh, ssh-keygen and sshd
// programs, and an sshd on a loopback port whose trusted CA keys and
// revocation list a test replaces between logins. The tests need OpenSSH
// installed (.ci/run installs openssh-client and openssh-server).
package sshtest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// Tool returns the path of an OpenSSH program, failing the test if it is
// not installed.
func Tool(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin"} {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatalf("%s not found: install openssh-client and openssh-server", name)
	return ""
}

// Run runs an OpenSSH program with TZ=UTC and returns its combined output
// and exit code; failing to start it fails the test.
func Run(t testing.TB, name string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(Tool(t, name), args...)
	cmd.Env = append(os.Environ(), "TZ=UTC")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &exit):
		return string(out), exit.ExitCode()
	}
	t.Fatalf("run %s %s: %v", name, strings.Join(args, " "), err)
	return "", -1
}

// Replace writes path atomically, so sshd never reads half a file.
func Replace(t testing.TB, path string, content []byte) {
	t.Helper()
	if err := os.WriteFile(path+".tmp", content, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
}

// LockedBuffer collects a process's output while it runs.
type LockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *LockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *LockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// SSHD is a real sshd on a loopback port. It trusts the CA keys in
// TrustedPath and refuses the keys and certificates in KRLPath (a KRL, or
// a list of public keys); it reads both again at every login. Both start
// empty: nothing trusted, nothing revoked.
type SSHD struct {
	Port        int
	TrustedPath string
	KRLPath     string
	Log         *LockedBuffer // sshd's output
}

// StartSSHD starts sshd -D -e for the test, letting only login in. If
// hostCert is set, it is called with the host's public key (authorized_keys
// form) and returns the host certificate sshd presents.
func StartSSHD(t testing.TB, login string, hostCert func(hostPub string) string) *SSHD {
	t.Helper()
	bin := Tool(t, "sshd")
	if os.Geteuid() == 0 {
		// sshd running as root wants its privilege separation directory.
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	s := &SSHD{Port: freePort(t), TrustedPath: filepath.Join(dir, "trusted_user_ca_keys"),
		KRLPath: filepath.Join(dir, "revoked_keys"), Log: &LockedBuffer{}}
	Replace(t, s.TrustedPath, nil)
	Replace(t, s.KRLPath, nil)

	_, hostPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	hostKey, hostPub := WriteKey(t, dir, "ssh_host_ed25519_key", hostPriv)
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
`, s.Port, hostKey, filepath.Join(dir, "sshd.pid"), s.TrustedPath, s.KRLPath, login)
	if hostCert != nil {
		certPath := filepath.Join(dir, "ssh_host_ed25519_key-cert.pub")
		Replace(t, certPath, []byte(hostCert(hostPub)+"\n"))
		config += "HostCertificate " + certPath + "\n"
	}
	configPath := filepath.Join(dir, "sshd_config")
	Replace(t, configPath, []byte(config))
	if out, err := exec.Command(bin, "-t", "-f", configPath).CombinedOutput(); err != nil {
		t.Fatalf("sshd -t: %v\n%s", err, out)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "-D", "-e", "-f", configPath)
	cmd.Stdout, cmd.Stderr = s.Log, s.Log
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
			t.Logf("sshd log:\n%s", s.Log)
		}
	})
	for deadline := time.Now().Add(10 * time.Second); ; {
		conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", s.Port), time.Second)
		if err == nil {
			conn.Close()
			return s
		}
		select {
		case <-exited:
			t.Fatalf("sshd exited:\n%s", s.Log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("sshd not listening on port %d: %v\n%s", s.Port, err, s.Log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Login runs ssh with the private key and certificate (host keys not
// checked) and reports whether it logged in and ran true; ssh's output is
// returned for messages.
func (s *SSHD) Login(t testing.TB, login, keyPath, certPath string) (bool, string) {
	t.Helper()
	return s.ssh(t, login, keyPath, certPath, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null")
}

// Connect is Login with knownHosts as ssh's only list of known hosts and
// StrictHostKeyChecking=yes: it succeeds only if the host is known without
// any prompt.
func (s *SSHD) Connect(t testing.TB, login, keyPath, certPath, knownHosts string, opts ...string) (bool, string) {
	t.Helper()
	return s.ssh(t, login, keyPath, certPath, append([]string{"-o", "StrictHostKeyChecking=yes", "-o", "UserKnownHostsFile=" + knownHosts,
		"-o", "GlobalKnownHostsFile=/dev/null", "-o", "UpdateHostKeys=no"}, opts...)...)
}

func (s *SSHD) ssh(t testing.TB, login, keyPath, certPath string, hostOpts ...string) (bool, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args := []string{"-F", "/dev/null", "-i", keyPath, "-o", "CertificateFile=" + certPath, "-o", "IdentitiesOnly=yes",
		"-o", "IdentityAgent=none", "-o", "BatchMode=yes", "-o", "PasswordAuthentication=no", "-o", "ConnectTimeout=10"}
	args = append(args, hostOpts...)
	args = append(args, "-p", fmt.Sprint(s.Port), login+"@127.0.0.1", "true")
	out, err := exec.CommandContext(ctx, Tool(t, "ssh"), args...).CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("ssh timed out: %s", out)
	}
	return err == nil, string(out)
}

// WaitLog reports whether sshd's output after offset contains want,
// waiting briefly for output still in the pipe.
func (s *SSHD) WaitLog(offset int, want string) bool {
	for range 100 {
		if strings.Contains(s.Log.String()[offset:], want) {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// WriteKey writes key as an OpenSSH private key file (mode 0600) in dir and
// returns its path and the public key in authorized_keys form.
func WriteKey(t testing.TB, dir, name string, key any) (path, public string) {
	t.Helper()
	block, err := ssh.MarshalPrivateKey(key, "")
	if err != nil {
		t.Fatal(err)
	}
	path = filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return path, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey())))
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
