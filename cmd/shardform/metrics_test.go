package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/shardform/shardform/internal/sshtest"
	"github.com/shardform/shardform/store/storetest"
)

// TestWorkerMetrics runs an API process and a worker process (SHARDFORM_
// METRICS_ADDR set) on one database: after a local request is planned and
// a certificate signed, the worker's /metrics counts its Terraform plan
// process (none running), and the API's /metrics holds the signing
// latency and the queue's jobs.
func TestWorkerMetrics(t *testing.T) {
	t.Parallel()
	url, apiAddr, metricsAddr := storetest.NewDB(t), freeAddr(t), freeAddr(t)
	dataDir := t.TempDir()
	common := map[string]string{
		"SHARDFORM_DATABASE_URL": url, "SHARDFORM_DATA_DIR": dataDir, "PATH": os.Getenv("PATH"),
		"SHARDFORM_TF_PLUGIN_MIRROR": os.Getenv("SHARDFORM_TF_PLUGIN_MIRROR"),
	}
	with := func(extra map[string]string) func(string) string {
		m := map[string]string{}
		for k, v := range common {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return cmdEnv(m)
	}
	ctx, cancel := context.WithCancel(t.Context())
	start := func(cmd string, env func(string) string) *sshtest.LockedBuffer {
		logs := &sshtest.LockedBuffer{}
		done := make(chan int, 1)
		go func() { done <- run(ctx, []string{cmd}, env, strings.NewReader(""), io.Discard, logs) }()
		t.Cleanup(func() { cancel(); <-done })
		return logs
	}
	// The API first: it applies the migrations and stores the master key
	// check; the worker then shares its data dir (the same master key).
	apiLogs := start("api", with(map[string]string{"SHARDFORM_ADDR": apiAddr}))
	waitHTTP(t, "http://"+apiAddr+"/health/live", apiLogs)
	workerLogs := start("worker", with(map[string]string{"SHARDFORM_METRICS_ADDR": metricsAddr}))
	waitHTTP(t, "http://"+metricsAddr+"/metrics", workerLogs)

	base := "http://" + apiAddr
	call := func(method, path, token string, body any) map[string]any {
		t.Helper()
		raw, _ := json.Marshal(body)
		r, _ := http.NewRequestWithContext(ctx, method, base+path, bytes.NewReader(raw))
		r.Header.Set("Content-Type", "application/json")
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
		if resp.StatusCode >= 300 {
			t.Fatalf("%s %s: %d %v", method, path, resp.StatusCode, out)
		}
		return out
	}
	creds := map[string]string{"email": "admin@example.com", "password": "correct horse battery"}
	call("POST", "/v1/auth/bootstrap", "", creds)
	token, _ := call("POST", "/v1/auth/login", "", creds)["access_token"].(string)
	id, _ := call("POST", "/v1/provision", token, map[string]any{"provider": "local", "region": "local", "instance_type": "local-small", "name": "web-1"})["id"].(string)
	call("POST", "/v1/provision/"+id+"/plan", token, nil)
	deadline := time.Now().Add(5 * time.Minute)
	for {
		r := call("GET", "/v1/provision/"+id, token, nil)
		if r["status"] == "planned" {
			break
		}
		if r["status"] == "failed" || time.Now().After(deadline) {
			t.Fatalf("request %v\nworker:\n%s", r, workerLogs.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	call("POST", "/v1/ssh/certificate", token, map[string]any{"public_key": string(ssh.MarshalAuthorizedKey(key)), "principals": []string{"root"}})

	worker := scrape(t, "http://"+metricsAddr+"/metrics")
	for _, want := range []string{
		`shardform_terraform_processes_total{command="plan"} 1`,
		`shardform_terraform_processes_running{command="plan"} 0`,
		`shardform_terraform_process_cpu_seconds_total{command="plan"}`,
	} {
		if !strings.Contains(worker, want) {
			t.Errorf("worker /metrics lacks %q", want)
		}
	}
	api := scrape(t, base+"/metrics")
	for _, want := range []string{
		`shardform_ssh_sign_duration_seconds_count{kind="user",outcome="ok"} 1`,
		`shardform_jobs{kind="provision_plan",state="completed"} 1`,
	} {
		if !strings.Contains(api, want) {
			t.Errorf("API /metrics lacks %q", want)
		}
	}
	if strings.Contains(api, "shardform_terraform_processes_total") {
		t.Error("an API-only process reports Terraform processes it cannot run")
	}
}

// waitHTTP waits until url answers (the process has started).
func waitHTTP(t *testing.T, url string, logs *sshtest.LockedBuffer) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if r, err := http.Get(url); err == nil {
			r.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never answered:\n%s", url, logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func scrape(t *testing.T, url string) string {
	t.Helper()
	r, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}
