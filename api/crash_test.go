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

// TestProvisionWorkerKilledMidApply kills a `shardform worker` process
// (with its Terraform child: the whole process group, as a machine crash
// would) in the middle of an apply, starts another, and checks the request
// ends applied with exactly one node and no lock left behind.
func TestProvisionWorkerKilledMidApply(t *testing.T) {
	if testing.Short() {
		t.Skip("kills and restarts worker processes: about a minute")
	}
	t.Parallel()
	b := setup(t, setupOpts{provisioning: true, externalWorkers: true})
	a := b.bootstrap("ops@example.com")

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
			"SHARDFORM_LOCAL_APPLY_DELAY=10s",
			"SHARDFORM_TERRAFORM_TIMEOUT=15s",
			"SHARDFORM_LOG_LEVEL=warn",
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

	// Wait until Terraform is inside the slow create, then kill everything.
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(string(b.expect(req{method: "GET", path: "/v1/provision/" + id + "/logs", token: a.access}, 200).Raw), "Creating...") {
		if time.Now().After(deadline) {
			t.Fatalf("apply never started\n%s", firstOut.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := syscall.Kill(-first.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	if s := b.expect(req{method: "GET", path: "/v1/provision/" + id, token: a.access}, 200).str("status"); s != "applying" {
		t.Fatalf("status right after the kill: %s", s)
	}

	_, secondOut := startWorker()
	r := b.waitStatusFor(a.access, id, 3*time.Minute)
	if r.str("status") != "applied" {
		t.Fatalf("after restart: %s\nworker:\n%s", r.Raw, secondOut.String())
	}
	if n := b.count("SELECT count(*) FROM nodes"); n != 1 {
		t.Errorf("%d nodes, want exactly 1", n)
	}
	if n := b.count("SELECT count(*) FROM tf_state_versions v JOIN tf_states s ON s.id = v.state_id WHERE s.provision_id = $1", id); n < 1 {
		t.Errorf("%d state versions, want at least 1", n)
	}
	// The killed run's state lock was released by the retry.
	if n := b.count("SELECT count(*) FROM tf_state_locks"); n != 0 {
		t.Errorf("%d state locks still held", n)
	}
	if n := b.count("SELECT count(*) FROM river_job WHERE kind = 'provision_apply' AND attempt >= 2"); n != 1 {
		t.Errorf("the apply job was not retried (%d jobs with attempt >= 2)", n)
	}
}
