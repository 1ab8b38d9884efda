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
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shardform/shardform/internal/sshtest"
	"github.com/shardform/shardform/store/storetest"
)

// cmdEnv is an environment of only these variables.
func cmdEnv(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

// TestSubcommandFlags: --help prints every flag and exits 0 without doing
// anything (the database URL points nowhere and the data dir is never
// created); a wrong flag or argument exits 2 with the usage.
func TestSubcommandFlags(t *testing.T) {
	t.Parallel()
	dataDir := filepath.Join(t.TempDir(), "never-created")
	env := cmdEnv(map[string]string{"SHARDFORM_DATABASE_URL": "postgres://127.0.0.1:1/none", "SHARDFORM_DATA_DIR": dataDir, "HOME": t.TempDir()})
	for _, tc := range []struct {
		args       []string
		code       int
		stdout     []string // each must appear in stdout
		stderr     []string
		noneOnOut  bool
		noneOnErr  bool
		secondLine string
	}{
		{args: []string{"serve", "--help"}, code: 0, stdout: []string{"Usage:\n  shardform serve [flags]", "--addr", "--data-dir", "--database-url", "--log-level", "--log-format"}, noneOnErr: true},
		{args: []string{"api", "-h"}, code: 0, stdout: []string{"Usage:\n  shardform api [flags]", "--addr"}, noneOnErr: true},
		{args: []string{"worker", "-help"}, code: 0, stdout: []string{"Usage:\n  shardform worker [flags]", "--database-url"}, noneOnErr: true},
		{args: []string{"migrate", "--help"}, code: 0, stdout: []string{"Usage:\n  shardform migrate [flags]", "--database-url"}, noneOnErr: true},
		{args: []string{"ssh", "sign", "--help"}, code: 0, stdout: []string{"Usage:\n  shardform ssh sign [flags]", "--key", "--principal", "--hours", "--generate"}, noneOnErr: true},
		{args: []string{"ssh", "configure", "--help"}, code: 0, stdout: []string{"Usage:\n  shardform ssh configure", "--url", "--token", "--token-stdin"}, noneOnErr: true},
		{args: []string{"version", "--help"}, code: 0, stdout: []string{"Usage:\n  shardform version"}, noneOnErr: true},
		{args: []string{"health", "--help"}, code: 0, stdout: []string{"Usage:\n  shardform health [flags]", "--url", "--timeout"}, noneOnErr: true},
		{args: []string{"health", "--url", "http://127.0.0.1:1", "--timeout", "2s"}, code: 1, stderr: []string{"shardform: health: "}, noneOnOut: true},
		{args: []string{"--help"}, code: 0, stdout: []string{"shardform [command]", "serve", "ssh sign", "Exit codes:", "4  not authenticated"}, noneOnErr: true},
		{args: []string{"serve", "--bogus"}, code: 2, stderr: []string{"shardform serve: unknown flag: --bogus", "Usage:\n  shardform serve [flags]", "--addr"}, noneOnOut: true},
		{args: []string{"migrate", "--addr", ":1"}, code: 2, stderr: []string{"unknown flag: --addr"}, noneOnOut: true},
		{args: []string{"serve", "extra"}, code: 2, stderr: []string{`unexpected argument "extra"`}, noneOnOut: true},
		{args: []string{"ssh", "sign", "--nope"}, code: 2, stderr: []string{"shardform ssh sign: unknown flag: --nope", "--principal"}, noneOnOut: true},
		{args: []string{"ssh", "sign", "--hours", "many"}, code: 2, stderr: []string{`invalid argument "many" for "--hours" flag`}, noneOnOut: true},
		{args: []string{"ssh", "frob"}, code: 2, stderr: []string{`ssh: unknown command "frob"`}, noneOnOut: true},
		{args: []string{"frobnicate"}, code: 2, stderr: []string{`unknown command "frobnicate"`, "Usage:\n  shardform [flags]\n  shardform [command]"}, noneOnOut: true},
		{args: []string{"version"}, code: 0, stdout: []string{version}, noneOnErr: true},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(t.Context(), tc.args, env, strings.NewReader(""), &out, &errOut)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, out.String(), errOut.String())
			}
			for _, w := range tc.stdout {
				if !strings.Contains(out.String(), w) {
					t.Errorf("stdout lacks %q:\n%s", w, out.String())
				}
			}
			for _, w := range tc.stderr {
				if !strings.Contains(errOut.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, errOut.String())
				}
			}
			if tc.noneOnOut && out.Len() > 0 {
				t.Errorf("stdout: %s", out.String())
			}
			if tc.noneOnErr && errOut.Len() > 0 {
				t.Errorf("stderr: %s", errOut.String())
			}
		})
	}
	if _, err := os.Stat(dataDir); !os.IsNotExist(err) {
		t.Errorf("the data dir was created by --help or a usage error: %v", err)
	}
}

// TestAddrCheckedBeforeTheDatabase: a bad SHARDFORM_ADDR is named before
// any connection (the database URL points nowhere, so reaching it would
// answer another error).
func TestAddrCheckedBeforeTheDatabase(t *testing.T) {
	t.Parallel()
	var errOut bytes.Buffer
	env := cmdEnv(map[string]string{"SHARDFORM_ADDR": "localhost:99999", "SHARDFORM_DATABASE_URL": "postgres://127.0.0.1:1/none"})
	if code := run(t.Context(), []string{"serve"}, env, strings.NewReader(""), io.Discard, &errOut); code != 1 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if !strings.HasPrefix(errOut.String(), "shardform: SHARDFORM_ADDR: must be host:port") {
		t.Errorf("stderr %q", errOut.String())
	}
}

// TestMasterKeyMustMatchTheDatabase: started from another data dir (so
// with another generated key) against the same database, the process
// refuses to run with one line.
func TestMasterKeyMustMatchTheDatabase(t *testing.T) {
	t.Parallel()
	url := storetest.NewDB(t)
	first := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	cfg := Config{DatabaseURL: url, DataDir: first}
	pool, err := openDatabase(t.Context(), &cfg, true, log)
	if err != nil {
		t.Fatalf("first start: %v", err)
	}
	pool.Close()

	for _, tc := range []struct {
		name string
		env  map[string]string
		code int
	}{
		{"the same data dir", map[string]string{"SHARDFORM_DATA_DIR": first}, 0},
		{"another data dir", map[string]string{"SHARDFORM_DATA_DIR": t.TempDir()}, 1},
		{"another key in the environment", map[string]string{"SHARDFORM_MASTER_KEY": "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.env["SHARDFORM_DATABASE_URL"] = url
			cfg, err := loadConfig(cmdEnv(tc.env))
			if err != nil {
				t.Fatal(err)
			}
			pool, err := openDatabase(t.Context(), &cfg, true, log)
			if tc.code == 0 {
				if err != nil {
					t.Fatalf("same key refused: %v", err)
				}
				pool.Close()
				return
			}
			var errOut bytes.Buffer
			if code := exitCode(err, &errOut); code != tc.code {
				t.Fatalf("exit %d: %s", code, errOut.String())
			}
			if want := "shardform: the master key does not match this database: set SHARDFORM_MASTER_KEY or SHARDFORM_DATA_DIR to the one it was created with\n"; errOut.String() != want {
				t.Errorf("stderr %q\nwant   %q", errOut.String(), want)
			}
		})
	}
}

// freeAddr is a loopback address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestServeWithoutTerraform: the API and the other queues run; readiness
// says the terraform queue is unavailable; a provision job fails naming
// SHARDFORM_TERRAFORM_PATH.
func TestServeWithoutTerraform(t *testing.T) {
	t.Parallel()
	url, addr := storetest.NewDB(t), freeAddr(t)
	env := cmdEnv(map[string]string{
		"SHARDFORM_DATABASE_URL": url, "SHARDFORM_ADDR": addr, "SHARDFORM_DATA_DIR": t.TempDir(),
		"SHARDFORM_TERRAFORM_PATH": filepath.Join(t.TempDir(), "no-terraform-here"), "PATH": "/usr/bin:/bin",
	})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan int, 1)
	logs := &sshtest.LockedBuffer{}
	go func() { done <- run(ctx, []string{"serve"}, env, strings.NewReader(""), io.Discard, logs) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	base := "http://" + addr
	call := func(method, path, token string, body any) (int, map[string]any) {
		t.Helper()
		var rd io.Reader
		if body != nil {
			raw, _ := json.Marshal(body)
			rd = bytes.NewReader(raw)
		}
		r, _ := http.NewRequestWithContext(ctx, method, base+path, rd)
		if body != nil {
			r.Header.Set("Content-Type", "application/json")
		}
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if r, err := http.Get(base + "/health/live"); err == nil {
			r.Body.Close()
			break
		}
		select {
		case code := <-done:
			t.Fatalf("serve exited %d:\n%s", code, logs.String())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("serve did not start")
		}
	}
	code, ready := call("GET", "/health/ready", "", nil)
	if un, _ := ready["unavailable"].(map[string]any); code != 200 || ready["status"] != "degraded" || !strings.Contains(fmt.Sprint(un["terraform"]), "SHARDFORM_TERRAFORM_PATH") {
		t.Fatalf("ready %d %v", code, ready)
	}
	var hout, herr bytes.Buffer
	if code := run(ctx, []string{"health"}, env, strings.NewReader(""), &hout, &herr); code != 0 || !strings.HasPrefix(hout.String(), "degraded\nterraform: ") {
		t.Errorf("shardform health: exit %d, stdout %q, stderr %q", code, hout.String(), herr.String())
	}
	call("POST", "/v1/auth/bootstrap", "", map[string]string{"email": "admin@example.com", "password": "correct horse battery"})
	_, login := call("POST", "/v1/auth/login", "", map[string]string{"email": "admin@example.com", "password": "correct horse battery"})
	token, _ := login["access_token"].(string)
	code, created := call("POST", "/v1/provision", token, map[string]any{"provider": "local", "region": "local", "instance_type": "local-small", "name": "web-1"})
	if code != 201 && code != 202 {
		t.Fatalf("create %d %v", code, created)
	}
	id, _ := created["id"].(string)
	if code, r := call("POST", "/v1/provision/"+id+"/plan", token, nil); code != 202 {
		t.Fatalf("plan %d %v", code, r)
	}
	for {
		_, r := call("GET", "/v1/provision/"+id, token, nil)
		if r["status"] == "failed" {
			if msg := fmt.Sprint(r["error"]); !strings.Contains(msg, "SHARDFORM_TERRAFORM_PATH") {
				t.Errorf("the failure does not name SHARDFORM_TERRAFORM_PATH: %q", msg)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still %v", r["status"])
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestLogLinesStaySmall: a huge value (an error quoting a 1 MB input)
// is cut in the log line, in both formats.
func TestLogLinesStaySmall(t *testing.T) {
	t.Parallel()
	huge := strings.Repeat("é", 500_000)
	for _, jsonFormat := range []bool{false, true} {
		var buf bytes.Buffer
		log := newLogger(&buf, Config{LogJSON: jsonFormat})
		log.Error("request failed", slog.String("email", huge), slog.Any("error", fmt.Errorf("lookup %s: %w", huge, io.EOF)), slog.String("route", "/v1/auth/login"))
		line := buf.String()
		if len(line) > 3*maxLoggedValue || !strings.Contains(line, "(1000000 bytes)") || !strings.Contains(line, "/v1/auth/login") {
			t.Errorf("json %v: a %d-byte line: %.200s", jsonFormat, len(line), line)
		}
	}
}
