package walkthrough

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	cffake "github.com/shardform/shardform/internal/fake/cloudflare"
	"github.com/shardform/shardform/store/storetest"
)

// sections are the README walk-throughs that run on any machine: their
// first shell block is run in this order, in one shell, so later ones use
// the variables of earlier ones as a reader's terminal would. (The SSH
// walk-through writes to /etc/ssh and the suggest-fit one needs nodes made
// with psql; the SSH tests cover those steps with a real sshd.) The DNS
// walk-through runs against the local fake of Cloudflare's API, as the
// README offers for trying it (the zone and token of fakecf's defaults).
var sections = []string{
	"## Walk-through with curl",
	"## Provisioning walk-through (the `local` driver)",
	"## Capacity planner walk-through",
	"## DNS walk-through",
	"## Scheduling walk-through: cordon, drain, migrate",
	"## Power actions walk-through (the `local` driver)",
}

func TestREADMEWalkthroughs(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "jq", "column", "terraform", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (the README's setup lists it): %v", tool, err)
		}
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var script strings.Builder
	for _, s := range sections {
		block, err := firstShellBlock(string(readme), s)
		if err != nil {
			t.Fatal(err)
		}
		script.WriteString(block)
	}

	dir := t.TempDir()
	bin := filepath.Join(dir, "shardform")
	build := exec.Command("go", "build", "-o", bin, "github.com/shardform/shardform/cmd/shardform")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cf := cffake.New(t)
	cf.AddZone("023e105f4ecef8ad9ca31a8372d0c353", "example.com")
	cf.AddToken("fake-cloudflare-token")
	dbURL := emptyDatabase(t)
	addr := freeAddr(t)
	base := "http://" + addr

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	serve := exec.CommandContext(ctx, bin, "serve")
	serve.Dir = dir
	serve.Env = append(cleanEnv(), "SHARDFORM_DATABASE_URL="+dbURL, "SHARDFORM_ADDR="+addr, "SHARDFORM_DATA_DIR="+filepath.Join(dir, "data"),
		"SHARDFORM_CLOUDFLARE_ENDPOINT="+cf.URL)
	var serverLog bytes.Buffer
	serve.Stdout, serve.Stderr = &serverLog, &serverLog
	serve.Cancel = func() error { return serve.Process.Signal(os.Interrupt) }
	serve.WaitDelay = 30 * time.Second
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cancel()
		_ = serve.Wait()
		if t.Failed() {
			t.Logf("server log:\n%s", serverLog.String())
		}
	}()
	waitReady(t, base+"/health/ready")

	// The reader's shell: any curl answer of 4xx or 5xx stops the script.
	prelude := "set -euo pipefail\ncurl() { command curl --fail-with-body \"$@\"; }\n"
	body := regexp.MustCompile(`(?m)^B=http://127\.0\.0\.1:8080$`).ReplaceAllString(script.String(), "B="+base)
	if !strings.Contains(body, "B="+base) {
		t.Fatal("the README's first walk-through no longer sets B=http://127.0.0.1:8080")
	}
	// After the walk-throughs: the destroy the provisioning one started
	// finishes and takes the node with it.
	epilogue := `
for _ in $(seq 1 120); do
  [ "$(curl -s $B/v1/provision/$ID -H "$H" | jq -r .status)" = destroyed ] && break
  sleep 0.5
done
curl -s $B/v1/provision/$ID -H "$H" | jq -e '.status == "destroyed"' >/dev/null
curl -s $B/v1/nodes -H "$H" | jq -e '.data | length == 0' >/dev/null
echo walk-through-complete
`
	sh := exec.Command("bash", "-c", prelude+body+epilogue)
	sh.Dir = dir
	// The client commands run the binary just built, with a config file of
	// their own (never the developer's).
	sh.Env = append(cleanEnv(), "CF_API="+cf.URL, "PATH="+dir+string(os.PathListSeparator)+os.Getenv("PATH"),
		"SHARDFORM_CONFIG="+filepath.Join(dir, "client-config.json"))
	out, err := sh.CombinedOutput()
	if err != nil {
		t.Fatalf("the README's walk-throughs failed: %v\n%s", err, out)
	}
	for _, want := range []string{`"needs_bootstrap":true`, `"kind":"plan","status":"succeeded","exit_code":0`, `"actions":["create"]`, `"kind":"refresh","status":"succeeded","drifted":false,"drift":[]`, `{"status":"cancelled","error":"cancelled before it ran","started_at":null}`, "\n409\n", "apply succeeded exit=0",
		`{"instance_type":"local-medium","vcpu":2,"memory_mb":4096}`, "udp 2456-2458 valheim", `"name":"web-1","provider":"local"`, "valheim", "hetzner/fsn1/",
		`"type":"SRV","name":"_minecraft._tcp.play.example.com","content":"5 25565 play.example.com","status":"synced"`,
		"the name is taken by a record shardform does not manage: A mail.example.com 192.0.2.25", `"content":"192.0.2.27","status":"deleted"`,
		`"fqdn":"mc-1.local.nodes.example.com"`, `"recreated":["play.example.com"]`, "dns.reconcile.repair", `"content":"::1","status":"deleted"`,
		`{"kind":"drain","status":"partial","moves_done":2,"moves_left":0,"moves_failed":2,"failures":["gs-3","gs-4"]}`, "migrate sched-b → sched-a: succeeded, 3 moved",
		`{"kind":"stop","force":false,"status":"succeeded","error":""}`, `{"status":"stopped","power_state":"stopped"}`, `["stopped"]`, "stop force=true succeeded",
		"Logged in to " + base + " as ops@example.com", "auth:         api_token", "web-1  local     local   local-small", "\napplied\n",
		"==> applying (run ", "succeeded; request ", " is destroyed", "94.90 EUR/month  3.16 EUR/month",
		"walk-through-complete"} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("walk-through output lacks %q:\n%s", want, out)
		}
	}
}

// firstShellBlock returns the first ```sh block after the heading.
func firstShellBlock(readme, heading string) (string, error) {
	i := strings.Index(readme, "\n"+heading+"\n")
	if i < 0 {
		return "", fmt.Errorf("README has no section %q", heading)
	}
	rest := readme[i:]
	start := strings.Index(rest, "\n```sh\n")
	if start < 0 {
		return "", fmt.Errorf("section %q has no shell block", heading)
	}
	rest = rest[start+len("\n```sh\n"):]
	end := strings.Index(rest, "\n```")
	if end < 0 {
		return "", fmt.Errorf("section %q: unterminated shell block", heading)
	}
	return rest[:end+1], nil
}

// emptyDatabase names a database that does not exist yet (serve creates it,
// as on a new machine) and drops it when the test ends.
func emptyDatabase(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("sfwalk_%d", time.Now().UnixNano())
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

// cleanEnv is this process's environment without shardform's settings, so
// the server and the shell see what a new user's would.
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

func waitReady(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s did not answer 200 within 90 s", url)
}
