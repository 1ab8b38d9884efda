package api_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestProvisionStateThroughTheAPI: after an apply, the request's state has
// versions; users with provision:read read it (decrypted) and never write
// it; other organizations see nothing.
func TestProvisionStateThroughTheAPI(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{provisioning: true})
	a := b.bootstrap("ops@example.com")
	other := b.register("other@example.com")
	id := b.expect(req{method: "POST", path: "/v1/provision", token: a.access, body: localBody("web-1")}, 201).str("id")
	b.expect(req{method: "POST", path: "/v1/provision/" + id + "/plan", token: a.access}, 202)
	b.waitStatus(a.access, id)
	b.expect(req{method: "POST", path: "/v1/provision/" + id + "/apply", token: a.access}, 202)
	if r := b.waitStatus(a.access, id); r.str("status") != "applied" {
		t.Fatalf("apply: %s", r.Raw)
	}

	versions := b.expect(req{method: "GET", path: "/v1/provision/" + id + "/state/versions", token: a.access}, 200).list()
	if len(versions) < 1 || versions[0]["version"] != float64(len(versions)) || versions[0]["lineage"] == "" || versions[0]["checksum"] == "" {
		t.Fatalf("versions %v", versions)
	}
	latest := b.expect(req{method: "GET", path: "/v1/terraform/state/" + id, token: a.access}, 200)
	if latest.str("lineage") != versions[0]["lineage"] || !strings.Contains(string(latest.Raw), "terraform_data") {
		t.Fatalf("current state %s", latest.Raw)
	}
	one := b.expect(req{method: "GET", path: "/v1/provision/" + id + "/state/versions/1", token: a.access}, 200)
	if one.str("lineage") != versions[0]["lineage"] {
		t.Errorf("version 1 %s", one.Raw)
	}
	reader := b.apiToken(a, "provision:read")
	nodesOnly := b.apiToken(a, "nodes:read")
	for _, tc := range []struct {
		name    string
		r       req
		status  int
		message string
	}{
		{"a token with provision:read reads it", req{method: "GET", path: "/v1/terraform/state/" + id, token: reader}, 200, ""},
		{"users never write it", req{method: "POST", path: "/v1/terraform/state/" + id, token: a.access, body: map[string]any{"version": 4, "serial": 99, "lineage": "x"}}, 403, "written by its runs alone"},
		{"nor lock it", req{method: "POST", path: "/v1/terraform/state/" + id + "/lock", token: a.access, body: map[string]any{"ID": "x"}}, 403, ""},
		{"a token without provision:read", req{method: "GET", path: "/v1/terraform/state/" + id, token: nodesOnly}, 403, "missing permission provision:read"},
		{"another organization", req{method: "GET", path: "/v1/terraform/state/" + id, token: other.access}, 404, ""},
		{"another organization's versions", req{method: "GET", path: "/v1/provision/" + id + "/state/versions", token: other.access}, 404, ""},
		{"no credential", req{method: "GET", path: "/v1/terraform/state/" + id}, 401, ""},
		{"a version that does not exist", req{method: "GET", path: "/v1/provision/" + id + "/state/versions/999", token: a.access}, 404, ""},
		{"a version that is not a number", req{method: "GET", path: "/v1/provision/" + id + "/state/versions/x", token: a.access}, 400, "n: must be a version number"},
		{"deleting a state", req{method: "DELETE", path: "/v1/terraform/state/" + id, token: a.access, noContract: true}, 405, "use GET or POST"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := b.on(t).do(tc.r)
			if r.Status != tc.status || !strings.Contains(r.errMsg(), tc.message) {
				t.Errorf("status %d %s, want %d %q", r.Status, r.Raw, tc.status, tc.message)
			}
		})
	}
	if n := b.count("SELECT count(*) FROM tf_state_versions WHERE position(convert_to($1, 'UTF8') in sealed) > 0", latest.str("lineage")); n != 0 {
		t.Errorf("%d versions hold the lineage in plain text", n)
	}
}

// TestCustomStateForYourOwnTerraform runs the terraform CLI against the
// API with an API token holding state:write, as a team running Terraform
// itself would; a token without it is refused.
func TestCustomStateForYourOwnTerraform(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a := b.bootstrap("ops@example.com")
	base := b.listen()
	writer := b.apiToken(a, "state:write")
	reader := b.apiToken(a, "provision:read")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.tf"), []byte(`terraform {
  backend "http" {}
}
resource "terraform_data" "x" {
  input = "mine"
}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	rc := filepath.Join(dir, "terraform.rc")
	if err := os.WriteFile(rc, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	addr := base + "/v1/terraform/state/custom/team-infra"
	tf := func(token string, args ...string) (string, error) {
		cmd := exec.CommandContext(context.Background(), "terraform", args...)
		cmd.Dir = dir
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "TF_CLI_CONFIG_FILE=" + rc, "CHECKPOINT_DISABLE=1", "TF_IN_AUTOMATION=1",
			"TF_HTTP_ADDRESS=" + addr, "TF_HTTP_LOCK_ADDRESS=" + addr + "/lock", "TF_HTTP_UNLOCK_ADDRESS=" + addr + "/lock",
			"TF_HTTP_LOCK_METHOD=POST", "TF_HTTP_UNLOCK_METHOD=DELETE", "TF_HTTP_USERNAME=me", "TF_HTTP_PASSWORD=" + token}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := tf(reader, "init", "-input=false", "-no-color"); err == nil {
		t.Fatalf("init with a token lacking state:write succeeded:\n%s", out)
	}
	for _, args := range [][]string{{"init", "-input=false", "-no-color", "-reconfigure"}, {"apply", "-auto-approve", "-input=false", "-no-color"}, {"apply", "-auto-approve", "-input=false", "-no-color", "-replace=terraform_data.x"}} {
		if out, err := tf(writer, args...); err != nil {
			t.Fatalf("terraform %v: %v\n%s", args, err, out)
		}
	}
	got := b.expect(req{method: "GET", path: "/v1/terraform/state/custom/team-infra", token: writer}, 200)
	var state struct {
		Serial    int `json:"serial"`
		Resources []struct {
			Type string `json:"type"`
		} `json:"resources"`
	}
	if err := json.Unmarshal(got.Raw, &state); err != nil || len(state.Resources) != 1 || state.Resources[0].Type != "terraform_data" || state.Serial < 2 {
		t.Fatalf("state %s (%v)", got.Raw, err)
	}
	if n := b.count("SELECT count(*) FROM tf_state_locks"); n != 0 {
		t.Errorf("%d locks left after terraform ended", n)
	}
	if n := b.count("SELECT count(*) FROM tf_state_versions"); n < 2 {
		t.Errorf("%d versions, want one per apply", n)
	}
}
