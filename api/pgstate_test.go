package api_test

import (
	"bytes"
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shardform/shardform/internal/sshtest"
	"github.com/shardform/shardform/seal"
)

// TestStateOfThePGBackend: a request applied before shardform served its
// state has it in the pg backend's plain-text table (written here by the
// real terraform's pg backend, as earlier versions did). A worker process
// starting imports it under the migration lock into a sealed version and
// deletes the plain-text row; the request is then destroyed through the
// API from the imported state.
func TestStateOfThePGBackend(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts worker processes")
	}
	t.Parallel()
	b := setup(t, setupOpts{provisioning: true, externalWorkers: true})
	a := b.bootstrap("ops@example.com")
	tfBin, err := exec.LookPath("terraform")
	if err != nil {
		t.Skipf("terraform is not installed: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "shardform")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/shardform").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	dataDir := t.TempDir()
	startWorker := func() (*exec.Cmd, *sshtest.LockedBuffer) {
		cmd := exec.Command(bin, "worker")
		cmd.Env = []string{
			"PATH=" + os.Getenv("PATH"), "HOME=" + dataDir,
			"SHARDFORM_DATABASE_URL=" + b.pool.Config().ConnString(),
			"SHARDFORM_MASTER_KEY=" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{42}, seal.KeySize)),
			"SHARDFORM_DATA_DIR=" + dataDir,
			"SHARDFORM_LOG_LEVEL=info",
		}
		out := &sshtest.LockedBuffer{}
		cmd.Stdout, cmd.Stderr = out, out
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			_ = cmd.Wait()
		})
		return cmd, out
	}

	first, firstOut := startWorker()
	id := b.expect(req{method: "POST", path: "/v1/provision", token: a.access, body: localBody("web-1")}, 201).str("id")
	b.expect(req{method: "POST", path: "/v1/provision/" + id + "/plan", token: a.access}, 202)
	if r := b.waitStatus(a.access, id); r.str("status") != "planned" {
		t.Fatalf("plan: %s\n%s", r.Raw, firstOut.String())
	}
	b.expect(req{method: "POST", path: "/v1/provision/" + id + "/apply", token: a.access}, 202)
	if r := b.waitStatus(a.access, id); r.str("status") != "applied" {
		t.Fatalf("apply: %s\n%s", r.Raw, firstOut.String())
	}
	if err := first.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()

	// Back to how an earlier version kept it: the state in the pg
	// backend's table (pushed by terraform itself), none sealed.
	state := b.expect(req{method: "GET", path: "/v1/terraform/state/" + id, token: a.access}, 200).Raw
	if _, err := b.pool.Exec(t.Context(), "DELETE FROM tf_states WHERE provision_id = $1", id); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.tf"), []byte("terraform {\n  backend \"pg\" {}\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "state.json"), state, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"init", "-input=false", "-no-color"}, {"workspace", "new", "-no-color", id}, {"state", "push", "-force", "state.json"}} {
		cmd := exec.Command(tfBin, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "PG_CONN_STR="+b.pool.Config().ConnString(), "PG_SCHEMA_NAME=terraform_state", "TF_IN_AUTOMATION=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("terraform %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	var pushed []byte
	if err := b.pool.QueryRow(t.Context(), "SELECT data FROM terraform_state.states WHERE name = $1 AND data <> ''", id).Scan(&pushed); err != nil {
		t.Fatalf("the pushed plain-text state: %v", err)
	}

	// A worker starts: the state is imported and no longer in plain text.
	_, secondOut := startWorker()
	deadline := time.Now().Add(90 * time.Second)
	for b.count("SELECT count(*) FROM terraform_state.states WHERE name = $1", id) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the plain-text state is still there\n%s", secondOut.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	versions := b.expect(req{method: "GET", path: "/v1/provision/" + id + "/state/versions", token: a.access}, 200).list()
	if len(versions) != 1 || versions[0]["run_id"] != nil {
		t.Fatalf("versions after the import: %v", versions)
	}
	if got := b.expect(req{method: "GET", path: "/v1/provision/" + id + "/state/versions/1", token: a.access}, 200).Raw; !bytes.Equal(got, pushed) {
		t.Fatalf("the imported version differs from the pushed state:\n%s\nwant\n%s", got, pushed)
	}
	var sealed []byte
	if err := b.pool.QueryRow(t.Context(), "SELECT v.sealed FROM tf_state_versions v JOIN tf_states s ON s.id = v.state_id WHERE s.provision_id = $1", id).Scan(&sealed); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte(`"terraform_data"`)) {
		t.Fatal("the imported version is stored in plain text")
	}

	// The request goes on from the imported state: destroyed.
	b.expect(req{method: "DELETE", path: "/v1/provision/" + id, token: a.access}, 202)
	if r := b.waitStatus(a.access, id); r.str("status") != "destroyed" {
		t.Fatalf("destroy after the import: %s\n%s", r.Raw, secondOut.String())
	}
	if n := b.count("SELECT count(*) FROM nodes"); n != 0 {
		t.Errorf("%d nodes after the destroy", n)
	}
	if n := b.count("SELECT count(*) FROM terraform_state.states WHERE name = $1", id); n != 0 {
		t.Errorf("%d plain-text states left", n)
	}
	if vs := b.expect(req{method: "GET", path: "/v1/provision/" + id + "/state/versions", token: a.access}, 200).list(); len(vs) < 2 {
		t.Errorf("the destroy wrote no version after the imported one: %v", vs)
	}
}
