package tfstate_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shardform/shardform/tfstate"
)

// tfDir is a Terraform working directory run with an explicit environment.
type tfDir struct {
	bin string
	dir string
	env []string
}

const httpConfig = `terraform {
  backend "http" {}
}
variable "v" {
  type = string
}
resource "terraform_data" "x" {
  input = var.v
}
output "v" {
  value = terraform_data.x.output
}
`

// newTF writes config into a fresh directory; env is the whole environment
// beside PATH, HOME and an empty CLI configuration.
func newTF(t *testing.T, config string, env map[string]string) *tfDir {
	t.Helper()
	bin, err := exec.LookPath("terraform")
	if err != nil {
		t.Fatalf("terraform is not on PATH: %v", err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.tf"), []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	rc := filepath.Join(home, "terraform.rc")
	if err := os.WriteFile(rc, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	d := &tfDir{bin: bin, dir: dir, env: []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + home, "TF_CLI_CONFIG_FILE=" + rc,
		"CHECKPOINT_DISABLE=1", "TF_IN_AUTOMATION=1",
	}}
	for k, v := range env {
		d.env = append(d.env, k+"="+v)
	}
	return d
}

// run runs terraform with args and returns its combined output.
func (d *tfDir) run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, d.bin, args...)
	cmd.Dir = d.dir
	cmd.Env = d.env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (d *tfDir) must(t *testing.T, args ...string) string {
	t.Helper()
	out, err := d.run(t, args...)
	if err != nil {
		t.Fatalf("terraform %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// stateResourceID is the id of terraform_data.x in a state file.
func stateResourceID(t *testing.T, state []byte) string {
	t.Helper()
	var doc struct {
		Resources []struct {
			Type      string
			Instances []struct {
				Attributes struct{ ID string }
			}
		}
	}
	if err := json.Unmarshal(state, &doc); err != nil {
		t.Fatalf("state: %v", err)
	}
	for _, r := range doc.Resources {
		if r.Type == "terraform_data" && len(r.Instances) == 1 {
			return r.Instances[0].Attributes.ID
		}
	}
	t.Fatalf("no terraform_data in state %s", state)
	return ""
}

// TestTerraform runs the real terraform against the handler: init and two
// applies record versions, locks are released after each command, a held
// lock stops terraform with the holder's info, and a released or expired
// one lets it go on.
func TestTerraform(t *testing.T) {
	t.Parallel()
	b := setup(t, tfstate.Options{})
	ctx := context.Background()
	org := b.org(t)
	prov := b.provision(t, org)
	state, err := b.svc.ProvisionState(ctx, org, prov)
	if err != nil {
		t.Fatal(err)
	}
	run := uuid.New()
	user, pass, err := b.svc.MintRunCredential(ctx, state, run, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(tfstate.Handler(b.svc, tfstate.RunAuthenticator(b.svc)))
	t.Cleanup(srv.Close)
	target := tfstate.Target{ProvisionID: prov}
	tf := newTF(t, httpConfig, tfstate.BackendEnv(srv.URL, target, user, pass))
	grant, err := b.svc.AuthenticateRun(ctx, user, pass)
	if err != nil {
		t.Fatal(err)
	}
	noLocks := func(t *testing.T, after string) {
		t.Helper()
		if n := b.lockCount(t); n != 0 {
			t.Fatalf("%d locks left after %s", n, after)
		}
	}

	tf.must(t, "init", "-input=false", "-no-color")
	noLocks(t, "init")
	tf.must(t, "apply", "-auto-approve", "-input=false", "-no-color", "-var", "v=one")
	noLocks(t, "the first apply")
	first, err := b.svc.Versions(ctx, org, prov)
	if err != nil || len(first) == 0 {
		t.Fatalf("versions after the first apply: %+v, %v", first, err)
	}
	tf.must(t, "apply", "-auto-approve", "-input=false", "-no-color", "-var", "v=two")
	noLocks(t, "the second apply")

	vs, err := b.svc.Versions(ctx, org, prov)
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) <= len(first) {
		t.Fatalf("the second apply wrote no version: %+v", vs)
	}
	lineage := vs[0].Lineage
	for i, v := range vs { // newest first: n, n-1, ..., 1
		if v.Version != len(vs)-i || v.Lineage != lineage || v.RunID.UUID != run || (i > 0 && v.Serial >= vs[i-1].Serial) {
			t.Fatalf("versions not 1..n with rising serials of one lineage and run: %+v", vs)
		}
	}
	rows, err := b.pool.Query(ctx, "SELECT sealed FROM tf_state_versions")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var sealed []byte
		if err := rows.Scan(&sealed); err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(sealed, []byte(lineage)) || bytes.Contains(sealed, []byte("terraform_data")) {
			t.Fatal("state stored in plain text")
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}

	pulled := tf.must(t, "state", "pull")
	stored, found, err := b.svc.Read(ctx, grant)
	if err != nil || !found {
		t.Fatalf("Read: %v, %v", found, err)
	}
	if !jsonEqual(t, []byte(pulled), stored) {
		t.Fatalf("state pull\n%s\ndiffers from Read\n%s", pulled, stored)
	}
	noLocks(t, "state pull")

	// Another run holds the lock: a second lock is 423 with the holder's
	// info, and terraform stops, naming the lock.
	otherRun := uuid.New()
	otherUser, otherPass, err := b.svc.MintRunCredential(ctx, state, otherRun, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	held := lockInfo("held-by-another-run", "worker-2@elsewhere")
	lockURL := srv.URL + "/" + prov.String() + "/lock"
	post := func(user, pass string, body []byte) (int, []byte) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, lockURL, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.SetBasicAuth(user, pass)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		got, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, got
	}
	if code, body := post(otherUser, otherPass, held); code != http.StatusOK {
		t.Fatalf("lock by the other run: %d %s", code, body)
	}
	if code, body := post(user, pass, lockInfo("second", "me@here")); code != http.StatusLocked || !jsonEqual(t, body, held) {
		t.Fatalf("second lock: %d %s, want 423 with %s", code, body, held)
	}
	out, err := tf.run(t, "apply", "-auto-approve", "-input=false", "-no-color", "-var", "v=three")
	if err == nil {
		t.Fatalf("apply went on under another run's lock:\n%s", out)
	}
	// Terraform's http backend names the holder's ID from the 423 body (the
	// "Lock Info" it prints under it is its own request's).
	for _, want := range []string{"Error acquiring the state lock", "already locked: ID=held-by-another-run"} {
		if !strings.Contains(out, want) {
			t.Fatalf("terraform's error does not mention %q:\n%s", want, out)
		}
	}
	if after, _ := b.svc.Versions(ctx, org, prov); len(after) != len(vs) {
		t.Fatalf("a refused apply wrote a version: %+v", after)
	}

	// The holder's run is found dead and released: terraform goes on.
	if n, err := b.svc.ReleaseRun(ctx, otherRun); err != nil || n != 1 {
		t.Fatalf("ReleaseRun = %d, %v", n, err)
	}
	tf.must(t, "apply", "-auto-approve", "-input=false", "-no-color", "-var", "v=three")
	noLocks(t, "the apply after ReleaseRun")

	// A lock whose lease ran out is taken over.
	if code, body := post(otherUser, otherPass, held); code != http.StatusOK {
		t.Fatalf("lock by the other run: %d %s", code, body)
	}
	b.clock.Advance(tfstate.DefaultLockLease + time.Second)
	out = tf.must(t, "apply", "-auto-approve", "-input=false", "-no-color", "-var", "v=four")
	noLocks(t, "the apply after the lease expired")
	if !strings.Contains(out, `v = "four"`) {
		t.Fatalf("apply output:\n%s", out)
	}

	// terraform force-unlock releases a lock left behind.
	if code, body := post(otherUser, otherPass, held); code != http.StatusOK {
		t.Fatalf("lock by the other run: %d %s", code, body)
	}
	tf.must(t, "force-unlock", "-force", "held-by-another-run")
	noLocks(t, "force-unlock")

	// A credential that does not open this state is refused.
	bad := newTF(t, httpConfig, tfstate.BackendEnv(srv.URL, target, user, pass+"x"))
	if out, err := bad.run(t, "init", "-input=false", "-no-color"); err == nil || !strings.Contains(out, "HTTP remote state endpoint requires auth") {
		t.Fatalf("init with a wrong password: %v\n%s", err, out)
	}
}

// TestTerraformFromPGBackend writes a state with the old pg backend (the
// real terraform, workspace = provision id), migrates it, and goes on with
// the http backend: the same resource, the same lineage, a higher serial.
func TestTerraformFromPGBackend(t *testing.T) {
	t.Parallel()
	b := setup(t, tfstate.Options{})
	ctx := context.Background()
	org := b.org(t)
	prov := b.provision(t, org)

	pg := newTF(t, strings.Replace(httpConfig, `backend "http" {}`, `backend "pg" {}`, 1), map[string]string{
		"PG_CONN_STR": b.dbURL, "PG_SCHEMA_NAME": "terraform_state",
	})
	pg.must(t, "init", "-input=false", "-no-color")
	pg.must(t, "workspace", "new", "-no-color", prov.String())
	pg.must(t, "apply", "-auto-approve", "-input=false", "-no-color", "-var", "v=one")
	var old string
	if err := b.pool.QueryRow(ctx, "SELECT data FROM terraform_state.states WHERE name = $1", prov.String()).Scan(&old); err != nil {
		t.Fatal(err)
	}
	oldMeta, err := tfstate.ParseStateMeta([]byte(old))
	if err != nil {
		t.Fatal(err)
	}

	for i, want := range []int{1, 0} {
		n, err := b.svc.MigrateFromPG(ctx, "")
		if err != nil || n != want {
			t.Fatalf("MigrateFromPG #%d = %d, %v; want %d", i+1, n, err, want)
		}
	}
	vs, err := b.svc.Versions(ctx, org, prov)
	if err != nil || len(vs) != 1 || vs[0].Version != 1 || vs[0].Serial != oldMeta.Serial || vs[0].Lineage != oldMeta.Lineage || vs[0].RunID.Valid {
		t.Fatalf("versions after the migration: %+v, %v", vs, err)
	}
	if got := b.plainRows(t); got != "" {
		t.Fatalf("plain-text states left after the migration: %s", got)
	}

	state, err := b.svc.ProvisionState(ctx, org, prov)
	if err != nil {
		t.Fatal(err)
	}
	user, pass, err := b.svc.MintRunCredential(ctx, state, uuid.New(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(tfstate.Handler(b.svc, tfstate.RunAuthenticator(b.svc)))
	t.Cleanup(srv.Close)
	tf := newTF(t, httpConfig, tfstate.BackendEnv(srv.URL, tfstate.Target{ProvisionID: prov}, user, pass))
	tf.must(t, "init", "-input=false", "-no-color")
	out := tf.must(t, "plan", "-input=false", "-no-color", "-var", "v=one")
	if !strings.Contains(out, "No changes") {
		t.Fatalf("the migrated state does not match the infrastructure:\n%s", out)
	}
	tf.must(t, "apply", "-auto-approve", "-input=false", "-no-color", "-var", "v=two")
	g, err := b.svc.ProvisionGrant(ctx, org, prov)
	if err != nil {
		t.Fatal(err)
	}
	now, _, err := b.svc.Read(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	meta, err := tfstate.ParseStateMeta(now)
	if err != nil {
		t.Fatal(err)
	}
	if meta.Lineage != oldMeta.Lineage || meta.Serial <= oldMeta.Serial || stateResourceID(t, now) != stateResourceID(t, []byte(old)) {
		t.Fatalf("after the migration: serial %d lineage %s id %s; before: serial %d lineage %s id %s",
			meta.Serial, meta.Lineage, stateResourceID(t, now), oldMeta.Serial, oldMeta.Lineage, stateResourceID(t, []byte(old)))
	}
	// Migrating again never overwrites what the http backend wrote since.
	if n, err := b.svc.MigrateFromPG(ctx, ""); err != nil || n != 0 {
		t.Fatalf("MigrateFromPG after new writes = %d, %v", n, err)
	}
	if again, _, _ := b.svc.Read(ctx, g); !bytes.Equal(again, now) {
		t.Fatal("a later migration changed the state")
	}
}
