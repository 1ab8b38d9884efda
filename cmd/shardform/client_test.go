package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	cffake "github.com/shardform/shardform/internal/fake/cloudflare"
	"github.com/shardform/shardform/internal/sshtest"
	"github.com/shardform/shardform/store/storetest"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// TestMain runs the test binary as the shardform binary when
// SHARDFORM_CLI_MAIN=1: the client tests run the CLI as a subprocess.
func TestMain(m *testing.M) {
	if os.Getenv("SHARDFORM_CLI_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

const clientPassword = "correct horse battery"

// clientServer is the real server (`shardform serve`: API, workers,
// Terraform with the local driver) on a database of its own, and a
// config file for the client.
type clientServer struct {
	t      *testing.T
	base   string
	access string // the admin's session
	orgID  string
	email  string
	config string // the client's config file
}

func startClientServer(t *testing.T, settings ...string) *clientServer {
	t.Helper()
	addr := freeAddr(t)
	vars := map[string]string{
		"SHARDFORM_DATABASE_URL": storetest.NewDB(t), "SHARDFORM_ADDR": addr, "SHARDFORM_DATA_DIR": t.TempDir(),
		"SHARDFORM_LOG_LEVEL": "warn", "PATH": os.Getenv("PATH"), "HOME": t.TempDir(),
		"SHARDFORM_TF_PLUGIN_MIRROR": os.Getenv("SHARDFORM_TF_PLUGIN_MIRROR"),
	}
	for i := 0; i+1 < len(settings); i += 2 {
		vars[settings[i]] = settings[i+1]
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	logs := &sshtest.LockedBuffer{}
	go func() { done <- run(ctx, []string{"serve"}, cmdEnv(vars), strings.NewReader(""), io.Discard, logs) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	cs := &clientServer{t: t, base: "http://" + addr, email: "ops@example.com", config: filepath.Join(t.TempDir(), "config.json")}
	deadline := time.Now().Add(90 * time.Second)
	for {
		if r, err := http.Get(cs.base + "/health/live"); err == nil {
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
	creds := map[string]string{"email": cs.email, "password": clientPassword}
	var boot struct {
		Organization struct {
			ID string `json:"id"`
		} `json:"organization"`
	}
	cs.call("POST", "/v1/auth/bootstrap", "", creds, &boot, 201)
	cs.orgID = boot.Organization.ID
	cs.access = cs.session(cs.email)
	return cs
}

// session logs in with the password and answers the access token.
func (cs *clientServer) session(email string) string {
	var sess struct {
		AccessToken string `json:"access_token"`
	}
	cs.call("POST", "/v1/auth/login", "", map[string]string{"email": email, "password": clientPassword}, &sess, 200)
	return sess.AccessToken
}

// call sends one request, checks the status and answers the raw body.
func (cs *clientServer) call(method, path, bearer string, body, out any, want int) []byte {
	cs.t.Helper()
	var rd io.Reader
	if body != nil {
		buf, _ := json.Marshal(body)
		rd = bytes.NewReader(buf)
	}
	req, _ := http.NewRequest(method, cs.base+path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cs.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		cs.t.Fatalf("%s %s: %d %s, want %d", method, path, resp.StatusCode, raw, want)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			cs.t.Fatal(err)
		}
	}
	return raw
}

// apiToken mints an API token with these scopes.
func (cs *clientServer) apiToken(scopes ...string) (id, token string) {
	var tok struct {
		ID    string `json:"id"`
		Token string `json:"token"`
	}
	cs.call("POST", "/v1/api-tokens", cs.access, map[string]any{"name": "test", "scopes": scopes}, &tok, 201)
	return tok.ID, tok.Token
}

// cliResult is one run of the CLI subprocess.
type cliResult struct {
	code           int
	stdout, stderr string
}

// cli runs the shardform binary (this test binary, SHARDFORM_CLI_MAIN=1)
// with the server's config file, stdin and extra environment variables.
func (cs *clientServer) cli(stdin string, extra map[string]string, args ...string) cliResult {
	cs.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Env = cs.env(extra)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	res := cliResult{stdout: out.String(), stderr: errOut.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		res.code = ee.ExitCode()
	} else if err != nil {
		cs.t.Fatalf("run %v: %v", args, err)
	}
	return res
}

func (cs *clientServer) env(extra map[string]string) []string {
	env := []string{"SHARDFORM_CLI_MAIN=1", "SHARDFORM_CONFIG=" + cs.config, "PATH=" + os.Getenv("PATH"), "HOME=" + cs.t.TempDir()}
	for k, v := range extra {
		env = append(env, k+"="+v)
	}
	return env
}

// ok runs the CLI and fails the test unless it exits 0.
func (cs *clientServer) ok(args ...string) string {
	cs.t.Helper()
	r := cs.cli("", nil, args...)
	if r.code != 0 {
		cs.t.Fatalf("shardform %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// readConfig reads the client's config file.
func (cs *clientServer) readConfig() cliConfig {
	cs.t.Helper()
	raw, err := os.ReadFile(cs.config)
	if err != nil {
		cs.t.Fatal(err)
	}
	var c cliConfig
	if err := json.Unmarshal(raw, &c); err != nil {
		cs.t.Fatal(err)
	}
	return c
}

// loginAdmin logs the client in with the password.
func (cs *clientServer) loginAdmin() {
	cs.t.Helper()
	cs.ok("login", "--url", cs.base, "--email", cs.email, "--password", clientPassword)
}

var uuidRE = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)

// golden compares out (ids numbered) with testdata/name; -update rewrites it.
func golden(t *testing.T, name, out string) {
	t.Helper()
	// Ids become 00000000-0000-0000-0000-00000000000N in the order they
	// first appear (the same width: the columns stay aligned).
	seen := map[string]string{}
	out = uuidRE.ReplaceAllStringFunc(out, func(id string) string {
		if _, ok := seen[id]; !ok {
			seen[id] = fmt.Sprintf("00000000-0000-0000-0000-%012d", len(seen)+1)
		}
		return seen[id]
	})
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test -run %s -update writes it)", err, t.Name())
	}
	if string(want) != out {
		t.Errorf("%s differs:\n--- got\n%s--- want\n%s", name, out, want)
	}
}

// TestClientLogin: login with the password mints a token named after the
// machine and saves it (0600); whoami answers with it; login --key checks
// a pasted token; an account with MFA is asked for its code (flag, or a
// prompt reading stdin); logout deletes the token on the server and in
// the file.
func TestClientLogin(t *testing.T) {
	t.Parallel()
	cs := startClientServer(t)

	t.Run("password", func(t *testing.T) {
		out := cs.ok("login", "--url", cs.base, "--email", cs.email, "--password", clientPassword)
		if !strings.Contains(out, "Logged in to "+cs.base+" as "+cs.email) {
			t.Errorf("login said %q", out)
		}
		fi, err := os.Stat(cs.config)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("config file %v %v", fi, err)
		}
		cfg := cs.readConfig()
		if cfg.URL != cs.base || !strings.HasPrefix(cfg.Token, "shardform_api_") || cfg.TokenID == "" || cfg.OrganizationID != cs.orgID || cfg.Email != cs.email {
			t.Fatalf("config %+v", cfg)
		}
		var toks struct {
			Data []struct {
				ID     string   `json:"id"`
				Name   string   `json:"name"`
				Scopes []string `json:"scopes"`
			} `json:"data"`
		}
		cs.call("GET", "/v1/api-tokens", cs.access, nil, &toks, 200)
		host, _ := os.Hostname()
		var who struct {
			Scopes []string `json:"scopes"`
		}
		cs.call("GET", "/v1/whoami", cs.access, nil, &who, 200)
		if len(toks.Data) != 1 || toks.Data[0].Name != "shardform on "+host || toks.Data[0].ID != cfg.TokenID || len(toks.Data[0].Scopes) != len(who.Scopes) {
			t.Errorf("tokens %+v, want one named after the machine with the role's %d scopes", toks.Data, len(who.Scopes))
		}
		if out := cs.ok("whoami"); !strings.Contains(out, cs.email) || !strings.Contains(out, "api_token") || !strings.Contains(out, cs.orgID) {
			t.Errorf("whoami %q", out)
		}
		// The password from stdin when --password is omitted (no terminal).
		if r := cs.cli(clientPassword+"\n", nil, "login", "--email", cs.email); r.code != 0 {
			t.Errorf("login with the password on stdin: %d %s", r.code, r.stderr)
		}
		if r := cs.cli("wrong password\n", nil, "login", "--email", cs.email); r.code != exitAuth || r.stderr != "shardform: invalid email or password\n" {
			t.Errorf("wrong password: %d %q", r.code, r.stderr)
		}
	})

	t.Run("terminal prompts", func(t *testing.T) {
		// On a terminal the password is read without echo.
		r := cs.cliTTY([]ttyStep{{"Password: ", clientPassword + "\r"}}, "login", "--url", cs.base, "--email", cs.email)
		if r.code != 0 || strings.Contains(r.stderr, clientPassword) || !strings.Contains(r.stdout, "Logged in") {
			t.Errorf("login on a terminal: %d\nterminal: %q\nstdout: %q", r.code, r.stderr, r.stdout)
		}
	})

	t.Run("key", func(t *testing.T) {
		id, tok := cs.apiToken("provision:read")
		cs.ok("login", "--url", cs.base, "--key", tok)
		if cfg := cs.readConfig(); cfg.Token != tok || cfg.TokenID != id || cfg.Email != cs.email {
			t.Errorf("config %+v", cfg)
		}
		if r := cs.cli("", nil, "login", "--url", cs.base, "--key", "shardform_api_bogus"); r.code != exitAuth {
			t.Errorf("a bogus key: %d %q", r.code, r.stderr)
		}
		// The environment's token wins over the file's.
		if r := cs.cli("", map[string]string{"SHARDFORM_TOKEN": "shardform_api_bogus"}, "whoami"); r.code != exitAuth {
			t.Errorf("SHARDFORM_TOKEN: %d %q", r.code, r.stderr)
		}
		// --url wins over the file's.
		if r := cs.cli("", nil, "--url", "http://127.0.0.1:1", "whoami"); r.code != exitFail || !strings.Contains(r.stderr, "cannot reach the API") {
			t.Errorf("--url: %d %q", r.code, r.stderr)
		}
	})

	t.Run("logout", func(t *testing.T) {
		cs.loginAdmin()
		old := cs.readConfig()
		if out := cs.ok("logout"); !strings.Contains(out, "Logged out") {
			t.Errorf("logout said %q", out)
		}
		if cfg := cs.readConfig(); cfg.Token != "" || cfg.URL != cs.base {
			t.Errorf("config after logout %+v", cfg)
		}
		// Deleted on the server: the old token is refused.
		cs.call("GET", "/v1/whoami", old.Token, nil, nil, 401)
		if r := cs.cli("", nil, "whoami"); r.code != exitAuth || !strings.Contains(r.stderr, "not logged in") {
			t.Errorf("whoami after logout: %d %q", r.code, r.stderr)
		}
	})

	t.Run("mfa", func(t *testing.T) {
		var enr struct {
			Secret string `json:"secret"`
		}
		cs.call("POST", "/v1/auth/mfa/enroll", cs.access, nil, &enr, 200)
		code := func(at time.Time) string {
			c, err := totp.GenerateCode(enr.Secret, at)
			if err != nil {
				t.Fatal(err)
			}
			return c
		}
		now := time.Now()
		cs.call("POST", "/v1/auth/mfa/verify", cs.access, map[string]string{"code": code(now.Add(-30 * time.Second))}, nil, 200)
		// Without a code on stdin (EOF) the login cannot finish.
		if r := cs.cli("", nil, "login", "--email", cs.email, "--password", clientPassword); r.code != exitFail || !strings.Contains(r.stderr, "read standard input") {
			t.Errorf("MFA without a code: %d %q", r.code, r.stderr)
		}
		if r := cs.cli("", nil, "login", "--email", cs.email, "--password", clientPassword, "--mfa-code", "000000"); r.code != exitAuth {
			t.Errorf("a wrong MFA code: %d %q", r.code, r.stderr)
		}
		cs.ok("login", "--email", cs.email, "--password", clientPassword, "--mfa-code", code(now))
		// Prompted: the password, then the code, read from stdin.
		if r := cs.cli(clientPassword+"\n"+code(now.Add(30*time.Second))+"\n", nil, "login", "--email", cs.email); r.code != 0 {
			t.Fatalf("MFA login with prompts: %d %s", r.code, r.stderr)
		}
		if out := cs.ok("whoami"); !strings.Contains(out, cs.email) {
			t.Errorf("whoami %q", out)
		}
	})
}

// TestClientOutput: table output against golden files, --output json is
// exactly the API's answer to the same request, --quiet prints ids, and
// the exit codes: 2 usage, 3 not found, 4 auth.
func TestClientOutput(t *testing.T) {
	t.Parallel()
	cs := startClientServer(t)
	cs.loginAdmin()
	// Times print relative to a clock 3 minutes on.
	later := map[string]string{"SHARDFORM_CLI_NOW": time.Now().Add(3*time.Minute + 10*time.Second).UTC().Format(time.RFC3339)}
	out := func(args ...string) string {
		t.Helper()
		r := cs.cli("", later, args...)
		if r.code != 0 {
			t.Fatalf("shardform %s: exit %d %s", strings.Join(args, " "), r.code, r.stderr)
		}
		return r.stdout
	}

	id := strings.TrimSpace(out("provision", "create", "--provider", "local", "--region", "local", "--type", "local-small",
		"--name", "web-1", "--label", "env=prod", "--label", "team=ops", "--quiet"))
	if !uuidRE.MatchString(id) {
		t.Fatalf("create --quiet printed %q", id)
	}
	out("provision", "create", "--provider", "local", "--region", "local", "--type", "local-medium", "--name", "db-1")

	t.Run("golden", func(t *testing.T) {
		golden(t, "provision-list.txt", out("provision", "list"))
		golden(t, "provision-show.txt", out("provision", "show", id))
		golden(t, "orgs-list.txt", out("orgs", "list"))
		golden(t, "nodes-list.txt", out("nodes", "list"))
		golden(t, "planner-recommend.txt", out("planner", "recommend", "--cpu", "2", "--memory", "4", "--disk", "20", "--count", "3", "--provider", "hetzner", "--region", "fsn1", "--limit", "5"))
		golden(t, "search-provision.txt", out("search", "provision", "--search", "name=B-", "--filter", "instance_type=local-medium", "--filter", "instance_type=local-small", "--sort", "name"))
	})

	t.Run("search", func(t *testing.T) {
		tok := cs.readConfig().Token
		got := out("search", "provision", "--filter", "name=web-1", "--after", "created_at=2000-01-01T00:00:00Z", "--extend", "runs", "-o", "json")
		want := cs.call("POST", "/v1/provision/search", tok, map[string]any{"filters": map[string][]string{"name": {"web-1"}},
			"greaterThan": map[string]string{"created_at": "2000-01-01T00:00:00Z"}, "extend": []string{"runs"}, "page": 1, "limit": 100}, nil, 200)
		if got != string(want)+"\n" || !strings.Contains(got, `"runs":`) {
			t.Errorf("search --output json:\n%s\nthe API: %s", got, want)
		}
		if ids := strings.Fields(out("search", "provision", "--search", "name=WEB", "-q")); len(ids) != 1 || ids[0] != id {
			t.Errorf("search -q: %v, want [%s]", ids, id)
		}
		for _, tc := range []struct {
			args   []string
			code   int
			stderr string
		}{
			{[]string{"search", "planets"}, exitUsage, `search: unknown resource "planets"; one of audit-logs, credentials, dns-records, instances, nodes, provision, ssh-certificates`},
			{[]string{"search", "nodes", "--filter", "region"}, exitUsage, `search: --filter "region": want field=value`},
			{[]string{"search", "nodes", "--desc"}, exitUsage, "search: --desc needs --sort"},
			{[]string{"search", "nodes", "--filter", "colour=red"}, exitFail, "shardform: filters.colour: unknown field; allowed: "},
			{[]string{"search", "nodes", "--filter", "vcpu=two"}, exitFail, "shardform: filters.vcpu[0]: must be a whole number\n"},
		} {
			r := cs.cli("", nil, tc.args...)
			match := strings.Contains(r.stderr, tc.stderr)
			if strings.HasSuffix(tc.stderr, "\n") {
				match = r.stderr == tc.stderr
			}
			if r.code != tc.code || !match {
				t.Errorf("shardform %v: exit %d, want %d; stderr %q, want %q", tc.args, r.code, tc.code, r.stderr, tc.stderr)
			}
		}
	})

	t.Run("json is the API's answer", func(t *testing.T) {
		tok := cs.readConfig().Token
		for _, tc := range []struct {
			args []string
			path string
		}{
			{[]string{"provision", "list"}, "/v1/provision?limit=100"},
			{[]string{"provision", "show", id}, "/v1/provision/" + id},
			{[]string{"whoami"}, "/v1/whoami"},
			{[]string{"orgs", "list"}, "/v1/organizations?limit=100"},
			{[]string{"nodes", "list"}, "/v1/nodes?limit=100"},
			{[]string{"dns", "records", "list"}, "/v1/dns/records?limit=100"},
		} {
			got := out(append(tc.args, "--output", "json")...)
			want := cs.call("GET", tc.path, tok, nil, nil, 200)
			if got != string(want)+"\n" {
				t.Errorf("%v --output json:\n%s\nthe API: %s", tc.args, got, want)
			}
		}
	})

	t.Run("ssh key", func(t *testing.T) {
		key := filepath.Join(t.TempDir(), "id.pub")
		const pub = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEk7jFOBw3SBOjmqFwH7nmmc0Ro6M0Q0i6rdjSqLfHcA me@laptop"
		if err := os.WriteFile(key, []byte(pub+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		var r struct {
			SSHKeys []string `json:"ssh_keys"`
		}
		raw := out("provision", "create", "--provider", "local", "--region", "local", "--type", "local-small", "--name", "keyed", "--ssh-key", key, "-o", "json")
		if err := json.Unmarshal([]byte(raw), &r); err != nil || len(r.SSHKeys) != 1 || r.SSHKeys[0] != pub {
			t.Errorf("create --ssh-key: %s %v", raw, err)
		}
	})

	t.Run("quiet", func(t *testing.T) {
		ids := strings.Fields(out("provision", "list", "-q"))
		if len(ids) != 3 || !slices.Contains(ids, id) {
			t.Errorf("provision list -q: %v", ids)
		}
		// Pages: a table says what is left.
		if page := out("provision", "list", "--limit", "2"); !strings.HasSuffix(page, "1 more: --page 2\n") {
			t.Errorf("provision list --limit 2:\n%s", page)
		}
		if page := out("provision", "list", "--limit", "2", "--page", "2"); strings.Count(page, "\n") != 2 || strings.Contains(page, "more") {
			t.Errorf("provision list --limit 2 --page 2:\n%s", page)
		}
	})

	t.Run("exit codes", func(t *testing.T) {
		_, readOnly := cs.apiToken("nodes:read")
		missing := "00000000-0000-4000-8000-000000000000"
		for _, tc := range []struct {
			name   string
			env    map[string]string
			stdin  string
			args   []string
			code   int
			stderr string // the whole stderr when it ends in \n, else a part of it
		}{
			{"no id", nil, "", []string{"provision", "show"}, exitUsage, "provision show: wants 1 argument(s)"},
			{"bad output", nil, "", []string{"provision", "list", "-o", "yaml"}, exitUsage, `--output: must be table or json, got "yaml"`},
			{"unknown flag", nil, "", []string{"nodes", "list", "--frob"}, exitUsage, "shardform nodes list: unknown flag: --frob"},
			{"unknown subcommand", nil, "", []string{"provision", "frob"}, exitUsage, `provision: unknown command "frob"`},
			{"apply needs --yes without a terminal", nil, "y\n", []string{"provision", "apply", id}, exitUsage, "not a terminal to confirm on: pass --yes"},
			{"create needs its flags", nil, "", []string{"provision", "create", "--provider", "local"}, exitUsage, "--region is required"},
			{"not found", nil, "", []string{"provision", "show", missing}, exitNotFound, "shardform: provision request not found\n"},
			{"node not found", nil, "", []string{"nodes", "show", missing}, exitNotFound, "shardform: node not found\n"},
			{"validation", nil, "", []string{"provision", "create", "--provider", "local", "--region", "mars", "--type", "local-small", "--name", "x"}, exitFail, "shardform: region: must be one of local's regions"},
			{"forbidden", map[string]string{"SHARDFORM_TOKEN": readOnly}, "", []string{"provision", "list"}, exitAuth, "shardform: "},
			{"unauthenticated", map[string]string{"SHARDFORM_TOKEN": "shardform_api_nope"}, "", []string{"nodes", "list"}, exitAuth, "shardform: "},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := cs.cli(tc.stdin, tc.env, tc.args...)
				match := strings.Contains(r.stderr, tc.stderr)
				if strings.HasSuffix(tc.stderr, "\n") {
					match = r.stderr == tc.stderr
				}
				if r.code != tc.code || !match || r.stdout != "" {
					t.Errorf("exit %d, want %d\nstderr %q, want %q\nstdout %q", r.code, tc.code, r.stderr, tc.stderr, r.stdout)
				}
				if tc.code != exitUsage && strings.Count(r.stderr, "\n") != 1 {
					t.Errorf("the error is not one line: %q", r.stderr)
				}
			})
		}
	})
}

// TestClientProvision: create → plan --follow → apply --yes --follow →
// destroy --yes --follow with the local driver and real Terraform, and
// up --yes; --follow streams Terraform's output and ends with the status.
func TestClientProvision(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("terraform"); err != nil {
		t.Skip("terraform is not on PATH")
	}
	cs := startClientServer(t)
	cs.loginAdmin()

	id := strings.TrimSpace(cs.ok("provision", "create", "--provider", "local", "--region", "local", "--type", "local-small", "--name", "web-1", "-q"))
	plan := cs.ok("provision", "plan", id, "--follow")
	if !strings.Contains(plan, "Plan: ") || !strings.Contains(plan, "plan run ") || !strings.Contains(plan, "succeeded; request "+id+" is planned") {
		t.Errorf("plan --follow:\n%s", plan)
	}
	t.Logf("plan:\n%s", plan)
	// On a terminal apply shows the changes and asks; "n" changes nothing.
	no := cs.cliTTY([]ttyStep{{"Apply these changes? [y/N] ", "n\r"}}, "provision", "apply", id)
	if no.code != exitFail || !strings.Contains(no.stdout, "+ terraform_data.node (create)") || !strings.Contains(no.stderr, "aborted: nothing was changed") {
		t.Errorf("apply answered n: %d\n%s\n%s", no.code, no.stdout, no.stderr)
	}
	if out := cs.ok("provision", "show", id); !strings.Contains(out, "status:   planned") {
		t.Errorf("after a refused apply:\n%s", out)
	}
	apply := cs.ok("provision", "apply", id, "--yes", "--follow")
	t.Logf("apply:\n%s", apply)
	if !strings.Contains(apply, "to add") || !strings.Contains(apply, "Apply complete") || !strings.Contains(apply, "is applied") {
		t.Errorf("apply --follow:\n%s", apply)
	}
	// The JSON of a followed step is the request as the API answers it.
	var r provisionRequest
	if err := json.Unmarshal([]byte(cs.ok("provision", "show", id, "-o", "json")), &r); err != nil || r.Status != "applied" || r.NodeID == nil {
		t.Fatalf("after apply: %+v %v", r, err)
	}
	if nodes := cs.ok("nodes", "list"); !strings.Contains(nodes, "web-1") || !strings.Contains(nodes, *r.NodeID) {
		t.Errorf("nodes list:\n%s", nodes)
	}
	if out := cs.ok("nodes", "show", *r.NodeID); !strings.Contains(out, "status:    ready") || !strings.Contains(out, "provision: "+id) {
		t.Errorf("nodes show:\n%s", out)
	}
	if out := cs.ok("nodes", "drain", *r.NodeID, "--dry-run"); !strings.Contains(out, "status:    planned") {
		t.Errorf("nodes drain --dry-run:\n%s", out)
	}
	if out := cs.ok("nodes", "cordon", *r.NodeID); !strings.Contains(out, "cordoned") {
		t.Errorf("nodes cordon:\n%s", out)
	}
	if out := cs.ok("nodes", "uncordon", *r.NodeID); !strings.Contains(out, "status:    ready") {
		t.Errorf("nodes uncordon:\n%s", out)
	}
	// Power through the local driver's machine: stop at once, then start.
	for _, step := range []struct {
		args  []string
		power string
	}{
		{[]string{"nodes", "power", "stop", *r.NodeID, "--force"}, "stopped"},
		{[]string{"nodes", "power", "start", *r.NodeID}, "running"},
	} {
		if out := cs.ok(step.args...); !strings.Contains(out, "power "+step.args[2]+" of node "+*r.NodeID+": ") {
			t.Errorf("%v:\n%s", step.args, out)
		}
		deadline := time.Now().Add(2 * time.Minute)
		for {
			var n node
			if err := json.Unmarshal([]byte(cs.ok("nodes", "show", *r.NodeID, "-o", "json")), &n); err != nil {
				t.Fatal(err)
			}
			if n.PowerState == step.power {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("after %v the node is %+v", step.args, n)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	if logs := cs.ok("provision", "logs", id); !strings.Contains(logs, "Apply complete") {
		t.Errorf("provision logs:\n%s", logs)
	}
	destroy := cs.ok("provision", "destroy", id, "--yes", "--follow")
	if !strings.Contains(destroy, "is destroyed") {
		t.Errorf("destroy --follow:\n%s", destroy)
	}

	up := cs.cli("", nil, "up", "--provider", "local", "--region", "local", "--type", "local-small", "--name", "web-2", "--yes")
	if up.code != 0 || !strings.Contains(up.stdout, "==> created provision request") || !strings.Contains(up.stdout, "==> planning") ||
		!strings.Contains(up.stdout, "Plan: 1 to add") || !strings.Contains(up.stdout, "==> applying") || !strings.Contains(up.stdout, "is applied") {
		t.Errorf("up: exit %d\n%s\n%s", up.code, up.stdout, up.stderr)
	}
	id2 := uuidRE.FindString(up.stdout)
	// Logs of a request with no run going: the stored output, then its status.
	logs := cs.cli("", nil, "provision", "logs", id2, "--follow")
	if logs.code != 0 || !strings.Contains(logs.stdout, "Apply complete") || logs.stderr != "request "+id2+" is applied\n" {
		t.Errorf("logs --follow: %d\n%s\n%s", logs.code, logs.stdout, logs.stderr)
	}
	if r := cs.cli("", nil, "provision", "cancel", id2); r.code != exitFail || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("cancel with no run going: %d %q", r.code, r.stderr)
	}
	// --follow with --output json: the logs on stderr, the request on stdout.
	d := cs.cli("", nil, "provision", "destroy", id2, "--yes", "--follow", "-o", "json")
	var destroyed provisionRequest
	if err := json.Unmarshal([]byte(d.stdout), &destroyed); d.code != 0 || err != nil || destroyed.Status != "destroyed" || !strings.Contains(d.stderr, "1 destroyed") {
		t.Errorf("destroy --follow -o json: %d %v\n%s\n%s", d.code, err, d.stdout, d.stderr)
	}
	if want := cs.call("GET", "/v1/provision/"+id2, cs.readConfig().Token, nil, nil, 200); d.stdout != string(want)+"\n" {
		t.Errorf("destroy -o json printed\n%s\nthe API answers\n%s", d.stdout, want)
	}
}

// TestLoginDevice: shardform login with no flags runs the device flow: it
// prints the code, a session approves it (POST /v1/auth/device/approve),
// the client saves the API token and whoami works with it; an API token
// cannot approve a device (403). Without the server side (a server that
// answers 404 for /v1/auth/device) login says so and exits 2.
func TestLoginDevice(t *testing.T) {
	t.Parallel()
	cs := startClientServer(t)
	probe, _ := http.Post(cs.base+"/v1/auth/device", "application/json", strings.NewReader(`{"client_name":"probe","scopes":["provision:read"]}`))
	if probe != nil {
		probe.Body.Close()
	}
	if probe == nil || probe.StatusCode == http.StatusNotFound {
		r := cs.cli("", nil, "login", "--url", cs.base)
		if r.code != exitUsage || !strings.HasPrefix(r.stderr, "shardform: this server has no device login; use --email or --key\n") {
			t.Errorf("login without a device flow: %d %q", r.code, r.stderr)
		}
		t.Skip("this server has no device flow (POST /v1/auth/device answers 404): the server side is on branch device")
	}

	// An API token cannot approve a device.
	var start deviceStart
	cs.call("POST", "/v1/auth/device", "", map[string]any{"client_name": "other", "scopes": []string{"provision:read"}}, &start, 200)
	_, tok := cs.apiToken("provision:read")
	cs.call("POST", "/v1/auth/device/approve", tok, map[string]string{"user_code": start.UserCode, "organization_id": cs.orgID}, nil, 403)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "login", "--url", cs.base)
	cmd.Env = cs.env(nil)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var errOut bytes.Buffer
	cmd.Stderr = &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	code := ""
	for code == "" && sc.Scan() {
		if _, c, ok := strings.Cut(sc.Text(), "enter the code: "); ok {
			code = strings.TrimSpace(c)
		}
	}
	if code == "" {
		_ = cmd.Wait()
		t.Fatalf("login printed no code; stderr %s", errOut.String())
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	cs.call("POST", "/v1/auth/device/approve", cs.access, map[string]string{"user_code": code, "organization_id": cs.orgID}, nil, 200)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("login: %v\n%s", err, errOut.String())
	}
	cfg := cs.readConfig()
	if !strings.HasPrefix(cfg.Token, "shardform_api_") || cfg.TokenID == "" || cfg.OrganizationID != cs.orgID {
		t.Errorf("config %+v", cfg)
	}
	if out := cs.ok("whoami"); !strings.Contains(out, cs.email) {
		t.Errorf("whoami after the device login: %q", out)
	}
}

// TestClientOrganizations: orgs switch saves the organization (by name
// or id); a login then mints its token there; --org is sent as
// X-Organization-ID (a token of another organization: 404, exit 3).
func TestClientOrganizations(t *testing.T) {
	t.Parallel()
	cs := startClientServer(t)
	cs.loginAdmin()
	var second organization
	cs.call("POST", "/v1/organizations", cs.access, map[string]string{"name": "games"}, &second, 201)

	// An API token sees the organization it was made in only.
	if list := cs.ok("orgs", "list"); strings.Contains(list, "games") || !strings.Contains(list, "*  "+cs.orgID) {
		t.Errorf("orgs list:\n%s", list)
	}
	if r := cs.cli("", nil, "orgs", "switch", "games"); r.code != exitNotFound || !strings.Contains(r.stderr, `no organization "games"`) {
		t.Errorf("orgs switch games with the first organization's token: %d %q", r.code, r.stderr)
	}
	r := cs.cli("", nil, "orgs", "switch", second.ID)
	if r.code != 0 || !strings.Contains(r.stdout, "Switched to "+second.ID) || !strings.Contains(r.stderr, "log in again") {
		t.Fatalf("orgs switch: %d %q %q", r.code, r.stdout, r.stderr)
	}
	if cfg := cs.readConfig(); cfg.OrganizationID != second.ID {
		t.Fatalf("config %+v", cfg)
	}
	// The old token is bound to the first organization: the header names the second.
	if r := cs.cli("", nil, "provision", "list"); r.code != exitNotFound || r.stderr != "shardform: organization not found\n" {
		t.Errorf("a token of another organization: %d %q", r.code, r.stderr)
	}
	cs.ok("login", "--email", cs.email, "--password", clientPassword)
	var who whoamiAnswer
	if err := json.Unmarshal([]byte(cs.ok("whoami", "-o", "json")), &who); err != nil || who.Organization == nil || who.Organization.ID != second.ID {
		t.Fatalf("whoami after logging in to games: %+v %v", who, err)
	}
	if r := cs.cli("", nil, "--org", cs.orgID, "whoami"); r.code != exitNotFound {
		t.Errorf("--org of another organization: %d %q", r.code, r.stderr)
	}
	if r := cs.cli("", nil, "orgs", "switch", "nowhere"); r.code != exitNotFound || !strings.Contains(r.stderr, `no organization "nowhere"`) {
		t.Errorf("orgs switch nowhere: %d %q", r.code, r.stderr)
	}
	if out := cs.ok("orgs", "switch", "games", "-q"); strings.TrimSpace(out) != second.ID {
		t.Errorf("orgs switch by name -q: %q", out)
	}
}

// TestClientCommands: the planner, node and DNS commands against the
// server (no Terraform: nodes come from the agent registration), and
// completion.
func TestClientCommands(t *testing.T) {
	t.Parallel()
	const zone = "023e105f4ecef8ad9ca31a8372d0c353"
	cf := cffake.New(t)
	cf.AddZone(zone, "example.com")
	cf.AddToken("fake-cloudflare-token")
	cs := startClientServer(t, "SHARDFORM_CLOUDFLARE_ENDPOINT", cf.URL)
	cs.loginAdmin()

	t.Run("ssh trust", func(t *testing.T) {
		dir := t.TempDir()
		out := cs.ok("ssh", "trust", "--dir", dir)
		kh, err := os.ReadFile(filepath.Join(dir, "shardform_known_hosts"))
		if err != nil {
			t.Fatal(err)
		}
		krl, err := os.ReadFile(filepath.Join(dir, "shardform_host.krl"))
		if err != nil || !bytes.HasPrefix(krl, []byte("SSHKRL\n\x00")) {
			t.Errorf("shardform_host.krl is not a KRL: %q %v", krl, err)
		}
		tok := cs.readConfig()
		if want := cs.call("GET", "/v1/ssh/known-hosts?organization_id="+tok.OrganizationID, "", nil, nil, 200); string(kh) != string(want) {
			t.Errorf("shardform_known_hosts %q, the API %q", kh, want)
		}
		if !strings.Contains(out, "RevokedHostKeys "+filepath.Join(dir, "shardform_host.krl")) || !strings.Contains(out, "UserKnownHostsFile ~/.ssh/known_hosts "+filepath.Join(dir, "shardform_known_hosts")) {
			t.Errorf("ssh trust printed:\n%s", out)
		}
	})

	t.Run("planner", func(t *testing.T) {
		out := cs.ok("planner", "recommend", "--template", "valheim", "--players", "10", "--limit", "3")
		if !strings.Contains(out, "RANK") || !strings.Contains(out, "EUR/month") {
			t.Errorf("recommend --template:\n%s", out)
		}
		if r := cs.cli("", nil, "planner", "recommend", "--template", "valheim", "--cpu", "2"); r.code != exitUsage {
			t.Errorf("--template with --cpu: %d %q", r.code, r.stderr)
		}
		if r := cs.cli("", nil, "planner", "recommend", "--template", "nope"); r.code != exitFail || !strings.HasPrefix(r.stderr, "shardform: template: ") {
			t.Errorf("an unknown template: %d %q", r.code, r.stderr)
		}
		fit := cs.ok("planner", "fit", "--cpu", "1", "--memory", "1", "--disk", "5")
		if !strings.Contains(fit, "0 nodes fit, 0 rejected") {
			t.Errorf("fit:\n%s", fit)
		}
	})

	t.Run("nodes", func(t *testing.T) {
		missing := "00000000-0000-4000-8000-000000000000"
		for _, args := range [][]string{{"nodes", "cordon", missing}, {"nodes", "uncordon", missing}, {"nodes", "power", "stop", missing},
			{"nodes", "drain", missing, "--dry-run"}, {"nodes", "rm", missing, "--yes"}} {
			if r := cs.cli("", nil, args...); r.code != exitNotFound || !strings.HasPrefix(r.stderr, "shardform: node") {
				t.Errorf("%v: %d %q", args, r.code, r.stderr)
			}
		}
		if r := cs.cli("", nil, "nodes", "rm", missing); r.code != exitUsage {
			t.Errorf("nodes rm without --yes and without a terminal: %d %q", r.code, r.stderr)
		}
		if r := cs.cli("", nil, "nodes", "power", "hibernate", missing); r.code != exitUsage {
			t.Errorf("power hibernate: %d %q", r.code, r.stderr)
		}
	})

	t.Run("dns", func(t *testing.T) {
		if out := cs.ok("dns", "records", "list"); !strings.HasPrefix(out, "ID  TYPE  NAME  ZONE  CONTENT  TTL  STATUS") {
			t.Errorf("dns records list:\n%s", out)
		}
		create := []string{"dns", "records", "create", "--zone", zone, "--type", "A", "--name", "play", "--content", "192.0.2.10", "--ttl", "300"}
		// No cloudflare credential yet: the API's 4xx, one line.
		if r := cs.cli("", nil, create...); r.code == 0 || strings.Count(r.stderr, "\n") != 1 || !strings.HasPrefix(r.stderr, "shardform: ") {
			t.Errorf("dns records create without a credential: %d %q", r.code, r.stderr)
		}
		cs.call("POST", "/v1/credentials", cs.access, map[string]any{"name": "cloudflare", "provider": "cloudflare",
			"secret": map[string]string{"api_token": "fake-cloudflare-token"}}, nil, 201)
		id := strings.TrimSpace(cs.ok(append(create, "-q")...))
		tok := cs.readConfig().Token
		waitRecord := func(want string) {
			t.Helper()
			for range 100 {
				var rec dnsRecord
				cs.call("GET", "/v1/dns/records/"+id, tok, nil, &rec, 200)
				if rec.Status == want {
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
			t.Fatalf("record %s never %s", id, want)
		}
		waitRecord("synced")
		golden(t, "dns-records-list.txt", cs.ok("dns", "records", "list"))
		if out := cs.ok("dns", "records", "rm", id); !strings.Contains(out, id+" A play.example.com -> 192.0.2.10: deleting") {
			t.Errorf("dns records rm: %q", out)
		}
		waitRecord("deleted")
		if r := cs.cli("", nil, "dns", "records", "rm", "00000000-0000-4000-8000-000000000000"); r.code != exitNotFound {
			t.Errorf("dns records rm: %d %q", r.code, r.stderr)
		}
	})

	t.Run("completion", func(t *testing.T) {
		for shell, want := range map[string]string{"bash": "# bash completion V2 for shardform", "zsh": "#compdef shardform", "fish": "complete -c shardform"} {
			if out := cs.ok("completion", shell); !strings.Contains(out, want) {
				t.Errorf("completion %s lacks %q", shell, want)
			}
		}
	})
}
