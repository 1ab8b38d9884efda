package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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

// sshTestServer runs the API with the SSH CA and its worker on a loopback
// port and returns its URL and an API token allowed to sign.
func sshTestServer(t *testing.T) (string, string) {
	t.Helper()
	pool := storetest.NewPool(t)
	st := store.NewStore(pool)
	key := bytes.Repeat([]byte{7}, seal.KeySize)
	sealer, err := seal.New(key)
	if err != nil {
		t.Fatal(err)
	}
	discard := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc, err := sshsign.New(st, sshca.NewVault(sealer), sshsign.Options{})
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
	srv, err := app.NewAPI(app.APIConfig{
		Store: st, MasterKey: key, SSH: svc, Logger: discard,
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
	base := "http://" + ln.Addr().String()

	post := func(path, bearer string, body, out any) {
		t.Helper()
		buf, _ := json.Marshal(body)
		req, _ := http.NewRequest("POST", base+path, bytes.NewReader(buf))
		req.Header.Set("Content-Type", "application/json")
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode >= 300 {
			raw, _ := io.ReadAll(resp.Body)
			t.Fatalf("POST %s: %d %s", path, resp.StatusCode, raw)
		}
		if out != nil {
			if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
				t.Fatal(err)
			}
		}
	}
	creds := map[string]string{"email": "dev@example.com", "password": "correct horse battery"}
	post("/v1/auth/bootstrap", "", creds, nil)
	var sess struct {
		AccessToken string `json:"access_token"`
	}
	post("/v1/auth/login", "", creds, &sess)
	var tok struct {
		Token string `json:"token"`
	}
	post("/v1/api-tokens", sess.AccessToken, map[string]any{"name": "cli", "scopes": []string{"ssh:sign"}}, &tok)
	return base, tok.Token
}

func TestSSHSignCommand(t *testing.T) {
	t.Parallel()
	base, token := sshTestServer(t)
	env := func(k string) string {
		return map[string]string{"SHARDFORM_URL": base, "SHARDFORM_TOKEN": token}[k]
	}
	dir := t.TempDir()
	keyPath := filepath.Join(dir, "id_test.pub")

	t.Run("generate and sign", func(t *testing.T) {
		var out bytes.Buffer
		if err := runSSHWith(t.Context(), []string{"sign", "--generate", "--key", keyPath, "--principal", "root,shardform", "--hours", "2"}, env, strings.NewReader(""), &out); err != nil {
			t.Fatalf("ssh sign: %v", err)
		}
		certPath := filepath.Join(dir, "id_test-cert.pub")
		raw, err := os.ReadFile(certPath)
		if err != nil {
			t.Fatal(err)
		}
		pub, _, _, _, err := ssh.ParseAuthorizedKey(raw)
		if err != nil {
			t.Fatal(err)
		}
		cert := pub.(*ssh.Certificate)
		if strings.Join(cert.ValidPrincipals, ",") != "root,shardform" || cert.ValidBefore-cert.ValidAfter != uint64((2*time.Hour+sshca.Backdate)/time.Second) {
			t.Errorf("certificate %v %d..%d", cert.ValidPrincipals, cert.ValidAfter, cert.ValidBefore)
		}
		// The certificate is for the generated key, whose private half is beside it.
		priv, err := os.ReadFile(filepath.Join(dir, "id_test"))
		if err != nil {
			t.Fatal(err)
		}
		signer, err := ssh.ParsePrivateKey(priv)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(signer.PublicKey().Marshal(), cert.Key.Marshal()) {
			t.Error("certificate is not for the generated key")
		}
		for _, want := range []string{"Certificate written to " + certPath, "principals: root, shardform", "valid until:"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("output lacks %q:\n%s", want, out.String())
			}
		}
		// --generate again replaces its own ephemeral key.
		if err := runSSHWith(t.Context(), []string{"sign", "--generate", "--key", keyPath}, env, strings.NewReader(""), io.Discard); err != nil {
			t.Fatalf("second --generate: %v", err)
		}
	})

	t.Run("errors are one line", func(t *testing.T) {
		err := runSSHWith(t.Context(), []string{"sign", "--key", keyPath, "--principal", "admin"}, env, strings.NewReader(""), io.Discard)
		if err == nil || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), `403: principal "admin" is not allowed`) {
			t.Errorf("error %q", err)
		}
		err = runSSHWith(t.Context(), []string{"sign", "--key", keyPath, "--hours", "99"}, env, strings.NewReader(""), io.Discard)
		if err == nil || !strings.Contains(err.Error(), "400: validity_hours: must be at most 24") {
			t.Errorf("error %q", err)
		}
		err = runSSHWith(t.Context(), []string{"sign", "--key", filepath.Join(dir, "missing.pub")}, env, strings.NewReader(""), io.Discard)
		if err == nil || !strings.Contains(err.Error(), "read public key") {
			t.Errorf("error %q", err)
		}
		err = runSSHWith(t.Context(), []string{"sign", "--key", keyPath}, func(string) string { return "" }, strings.NewReader(""), io.Discard)
		if err == nil || !strings.Contains(err.Error(), "SHARDFORM_URL") {
			t.Errorf("error %q", err)
		}
		// --generate never overwrites a key it did not make.
		mine := filepath.Join(dir, "mine.pub")
		if err := os.WriteFile(mine, []byte("ssh-ed25519 AAAA me@laptop\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		err = runSSHWith(t.Context(), []string{"sign", "--generate", "--key", mine}, env, strings.NewReader(""), io.Discard)
		if err == nil || !strings.Contains(err.Error(), "was not made by --generate") {
			t.Errorf("error %q", err)
		}
	})
}

// TestSSHConfigure: `shardform ssh configure` writes the config file (0600)
// and `shardform ssh sign` uses it when SHARDFORM_URL/TOKEN are unset; the
// environment wins over the file.
func TestSSHConfigure(t *testing.T) {
	t.Parallel()
	base, token := sshTestServer(t)
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	envOf := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	env := envOf(map[string]string{"HOME": home})

	tests := []struct {
		name    string
		args    []string
		stdin   string
		wantErr string
	}{
		{"no url", []string{"configure", "--token", "x"}, "", "--url must be an http:// or https:// address"},
		{"bad url", []string{"configure", "--url", "ftp://x", "--token", "x"}, "", "--url must be"},
		{"no token", []string{"configure", "--url", base}, "", "--token or --token-stdin is required"},
		{"empty stdin", []string{"configure", "--url", base, "--token-stdin"}, "  \n", "--token or --token-stdin is required"},
		{"extra argument", []string{"configure", "--url", base, "--token", "x", "more"}, "", `unexpected argument "more"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := runSSHWith(t.Context(), tt.args, env, strings.NewReader(tt.stdin), io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %v, want %q", err, tt.wantErr)
			}
		})
	}
	path := filepath.Join(home, ".config", "shardform", "config.json")
	if _, err := os.Stat(path); err == nil {
		t.Fatal("a refused configure wrote the config file")
	}

	var out bytes.Buffer
	if err := runSSHWith(t.Context(), []string{"configure", "--url", base + "/", "--token-stdin"}, env, strings.NewReader(token+"\n"), &out); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 || !strings.Contains(out.String(), path) {
		t.Fatalf("config file %v %v; output %q", fi, err, out.String())
	}
	key := filepath.Join(dir, "id.pub")
	if err := runSSHWith(t.Context(), []string{"sign", "--generate", "--key", key}, env, strings.NewReader(""), io.Discard); err != nil {
		t.Fatalf("sign with the config file: %v", err)
	}
	// The environment wins: a wrong token in it is used (and refused).
	err = runSSHWith(t.Context(), []string{"sign", "--key", key}, envOf(map[string]string{"HOME": home, "SHARDFORM_TOKEN": "shardform_api_wrong"}), strings.NewReader(""), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("error %v, want a 401 for the environment's token", err)
	}
	// SHARDFORM_CONFIG names another file.
	err = runSSHWith(t.Context(), []string{"sign", "--key", key}, envOf(map[string]string{"HOME": home, "SHARDFORM_CONFIG": filepath.Join(dir, "none.json")}), strings.NewReader(""), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "SHARDFORM_URL is not set") {
		t.Errorf("error %v", err)
	}
}
