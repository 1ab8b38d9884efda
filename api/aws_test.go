package api_test

import (
	"archive/zip"
	"bytes"
	"encoding/base64"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shardform/shardform/internal/fake/awsfake"
	cffake "github.com/shardform/shardform/internal/fake/cloudflare"
	"github.com/shardform/shardform/planner"
	"github.com/shardform/shardform/providers"
	"github.com/shardform/shardform/seal"
)

const (
	awsKeyID  = "AKIASHARDFORMTEST001"
	awsSecret = "aws-test-secret-key-0123456789abcdef"
)

var regTokenPattern = regexp.MustCompile(`shardform_reg_[A-Za-z0-9_-]{43}`)

// tokenOfPlan is the registration token in the variables of the request's
// stored plan (sealed with the tests' master key; a Terraform plan file is
// a zip whose tfplan holds the variables' values).
func tokenOfPlan(t *testing.T, b *bundle, id string) string {
	t.Helper()
	var sealed []byte
	if err := b.pool.QueryRow(t.Context(), "SELECT plan_file FROM provision_requests WHERE id = $1", id).Scan(&sealed); err != nil {
		t.Fatal(err)
	}
	sealer, err := seal.New(bytes.Repeat([]byte{42}, seal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	plan, err := sealer.Open(sealed, "plan:"+id)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(plan), int64(len(plan)))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		raw, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		if tok := regTokenPattern.FindString(string(raw)); tok != "" {
			return tok
		}
	}
	t.Fatal("no registration token in the plan file")
	return ""
}

// TestProvisionAWSEndToEnd provisions through the HTTP API with the real
// hashicorp/aws provider (from the filesystem mirror) against a local fake
// of EC2 and STS: credential → verify → plan → apply → node → destroy, and a
// revoked key failing with the provider's message.
func TestProvisionAWSEndToEnd(t *testing.T) {
	if os.Getenv("SHARDFORM_TF_PLUGIN_MIRROR") == "" {
		t.Skip("SHARDFORM_TF_PLUGIN_MIRROR not set: no hashicorp/aws provider to run")
	}
	t.Parallel()
	fake := awsfake.New(t)
	fake.Allow(awsKeyID, awsSecret)
	fake.Allow("AKIAREVOKEDTEST00001", "revoked-secret-0000")
	catalog, err := planner.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	driver := providers.NewAWS(catalog, catalog.ReadAt)
	driver.Endpoint = fake.URL
	// Auto-DNS on (against the Cloudflare fake): the node joins with its name.
	cf := cffake.New(t)
	cf.AddZone(zoneCom, "example.com")
	cf.AddToken(cfToken)
	b := setup(t, setupOpts{provisioning: true, drivers: []providers.Driver{driver}, awsEndpoint: fake.URL, ssh: true, joinURL: "https://shardform.example.com",
		cloudflare: cf.URL, rateLimit: 100000})
	a := b.bootstrap("ops@example.com")
	tok := a.access
	b.createCredential(tok, "cloudflare", "cloudflare", map[string]string{"api_token": cfToken})
	b.expect(req{method: "PUT", path: "/v1/dns/auto-config", token: tok, body: map[string]any{"enabled": true, "zone_id": zoneCom}}, 200)

	cred := b.createCredential(tok, "aws main", "aws", map[string]string{"access_key_id": awsKeyID, "secret_access_key": awsSecret})
	v := b.expect(req{method: "POST", path: "/v1/credentials/" + cred.str("id") + "/verify", token: tok, timeout: 5 * time.Minute}, 200)
	if v.Body["ok"] != true {
		t.Fatalf("verify a good key: %s", v.Raw)
	}

	region, itype := driver.Regions()[0].Name, "t3.micro"
	if _, ok := providers.FindInstanceType(driver, itype); !ok {
		itype = driver.InstanceTypes()[0].Name
	}
	created := b.expect(req{method: "POST", path: "/v1/provision", token: tok, body: map[string]any{
		"provider": "aws", "region": region, "instance_type": itype, "name": "game-1",
		"labels":   map[string]string{"game": "valheim"},
		"ssh_keys": []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGyH0bzkLgUXgtt3cH0mdEr1Gbi3eFTFW4AkFOtnlwH3 ops@example.com"},
	}}, 201)
	id := created.str("id")
	if created.str("credential_id") != cred.str("id") {
		t.Errorf("the default aws credential was not taken: %s", created.Raw)
	}

	b.expect(req{method: "POST", path: "/v1/provision/" + id + "/plan", token: tok}, 202)
	planned := b.waitStatusFor(tok, id, 8*time.Minute)
	if planned.str("status") != "planned" {
		t.Fatalf("plan: %s", planned.Raw)
	}
	sum := planned.Body["plan_summary"].(map[string]any)
	if sum["add"] != float64(2) || !strings.Contains(string(planned.Raw), "aws_instance.node") || !strings.Contains(string(planned.Raw), "aws_security_group.node") {
		t.Errorf("plan summary %v", sum)
	}

	// The plan minted the request's token (it is in the plan file, as in
	// every Terraform plan's variables): not valid before the apply.
	planToken := tokenOfPlan(t, b, id)
	b.expect(req{method: "POST", path: "/v1/agent/register", token: planToken, body: registerBody("ip-10-0-0-1", hostKey(t))}, 401)

	b.expect(req{method: "POST", path: "/v1/provision/" + id + "/apply", token: tok}, 202)
	applied := b.waitStatusFor(tok, id, 8*time.Minute)
	if applied.str("status") != "applied" {
		t.Fatalf("apply: %s", applied.Raw)
	}
	live := fake.Live()
	if len(live) != 1 || live[0].InstanceType != itype || live[0].Tags["game"] != "valheim" {
		t.Fatalf("EC2 holds %+v after apply", live)
	}
	// The instance is in its own security group, which lets SSH in.
	groups := fake.SecurityGroups()
	if len(groups) != 1 || !slices.Equal(live[0].SecurityGroupIDs, []string{groups[0].ID}) {
		t.Fatalf("security groups %+v; the instance is in %v", groups, live[0].SecurityGroupIDs)
	}
	if sg := groups[0]; !sg.Allows("tcp", 22, "0.0.0.0/0") || !sg.Allows("tcp", 22, "::/0") || sg.Tags["shardform-provision"] != id {
		t.Errorf("security group %+v does not let SSH in or is not tagged with the provision", sg)
	}
	node := b.expect(req{method: "GET", path: "/v1/nodes/" + applied.str("node_id"), token: tok}, 200)
	if node.str("server_id") != live[0].ID || node.str("ipv4") != live[0].PublicIP || node.str("provider") != "aws" || node.str("region") != region {
		t.Errorf("node %s, instance %+v", node.Raw, live[0])
	}

	// The node joins by itself: the user data EC2 received runs the
	// bootstrap with a token bound to this request, valid from the apply
	// until an hour after it; it registers this request's node, once.
	raw, err := base64.StdEncoding.DecodeString(live[0].UserData)
	if err != nil {
		t.Fatal(err)
	}
	regToken := regTokenPattern.FindString(string(raw))
	if !strings.Contains(string(raw), `"https://shardform.example.com", "`+regToken+`"]`) || !strings.Contains(string(raw), "/v1/agent/bootstrap.sh") || regToken == "" {
		t.Fatalf("user data without the bootstrap and its token:\n%s", raw)
	}
	if n := b.count(`SELECT count(*) FROM node_registration_tokens WHERE provision_id = $1 AND uses = 0
		AND not_before <= now() AND expires_at BETWEEN now() + interval '50 minutes' AND now() + interval '61 minutes'`, id); n != 1 {
		t.Errorf("%d tokens of the request open from the apply until an hour after it", n)
	}
	if regToken != planToken {
		t.Errorf("the user data's token is not the one the plan minted")
	}
	// After its window (an hour after the apply) it is refused, unspent.
	setExpiry := func(at string) {
		t.Helper()
		if _, err := b.pool.Exec(t.Context(), `UPDATE node_registration_tokens SET expires_at = `+at+` WHERE provision_id = $1`, id); err != nil {
			t.Fatal(err)
		}
	}
	setExpiry("now() - interval '1 second'")
	b.expect(req{method: "POST", path: "/v1/agent/register", token: regToken, body: registerBody("ip-10-0-0-1", hostKey(t))}, 401)
	setExpiry("now() + interval '1 hour'")
	joined := b.expect(req{method: "POST", path: "/v1/agent/register", token: regToken, body: registerBody("ip-10-0-0-1", hostKey(t))}, 201)
	if jn := joined.Body["node"].(map[string]any); jn["id"] != applied.str("node_id") || jn["name"] != "game-1" || jn["provider"] != "aws" {
		t.Errorf("the joined node is not the applied one: %v", jn)
	}
	// Auto-DNS named the node at the apply: its host certificate carries the fqdn.
	if jc, _ := joined.Body["host_certificates"].([]any); len(jc) != 1 ||
		!slices.Contains(jc[0].(map[string]any)["principals"].([]any), any("game-1.example.com")) {
		t.Errorf("the joined node's host certificates %v lack its fqdn game-1.example.com", jc)
	}
	b.expect(req{method: "POST", path: "/v1/agent/register", token: regToken, body: registerBody("ip-10-0-0-1", hostKey(t))}, 401)
	plannedTokens := b.count(`SELECT count(*) FROM node_registration_tokens WHERE provision_id = $1`, id)

	logs := b.expect(req{method: "GET", path: "/v1/provision/" + id + "/logs", token: tok}, 200)
	noSecretIn(t, "Terraform logs", logs.Raw, awsSecret)
	noSecretIn(t, "provision request", applied.Raw, awsSecret)
	noSecretIn(t, "Terraform logs", logs.Raw, regToken)
	if plannedTokens != 1 {
		t.Errorf("%d registration tokens of the request", plannedTokens)
	}

	// Plan review: the JSON plan, with the credential variables masked.
	planRun := applied.str("plan_run_id")
	plan := b.expect(req{method: "GET", path: "/v1/runs/" + planRun + "/plan", token: tok, timeout: 5 * time.Minute}, 200)
	noSecretIn(t, "the JSON plan", plan.Raw, awsSecret)
	noSecretIn(t, "the JSON plan", plan.Raw, awsKeyID)
	noSecretIn(t, "the JSON plan", plan.Raw, regToken)
	if !strings.Contains(string(plan.Raw), `"(sensitive value)"`) || !strings.Contains(string(plan.Raw), `"aws_instance.node"`) {
		t.Errorf("plan review without the masked variables or the instance: %.2000s", plan.Raw)
	}

	// Drift: a tag changed outside Terraform is found by a refresh run,
	// which names the attribute; the request stays applied.
	if r := b.expect(req{method: "POST", path: "/v1/provision/" + id + "/refresh", token: tok}, 202); r.str("status") != "applied" {
		t.Fatalf("refresh answered %s", r.Raw)
	}
	clean := b.waitRun(tok, b.latestRun(tok, id), 8*time.Minute)
	if clean.str("status") != "succeeded" || clean.Body["drifted"] != false {
		t.Fatalf("refresh before any outside change: %s", clean.Raw)
	}
	if !fake.SetTag(live[0].ID, "game", "minecraft") {
		t.Fatal("no instance to change")
	}
	b.expect(req{method: "POST", path: "/v1/provision/" + id + "/refresh", token: tok}, 202)
	drifted := b.waitRun(tok, b.latestRun(tok, id), 8*time.Minute)
	if drifted.str("status") != "succeeded" || drifted.Body["drifted"] != true || drifted.Body["exit_code"] != float64(2) {
		t.Fatalf("refresh after a tag changed outside: %s", drifted.Raw)
	}
	drift, _ := drifted.Body["drift"].([]any)
	if len(drift) != 1 || drift[0].(map[string]any)["address"] != "aws_instance.node" || !slices.Contains(drift[0].(map[string]any)["attributes"].([]any), any("tags")) {
		t.Errorf("drift report %v", drift)
	}
	got := b.expect(req{method: "GET", path: "/v1/provision/" + id, token: tok}, 200)
	if got.str("status") != "applied" || got.Body["drift"].(map[string]any)["drifted"] != true {
		t.Errorf("request after the drift check: %s", got.Raw)
	}

	b.expect(req{method: "DELETE", path: "/v1/provision/" + id, token: tok}, 202)
	destroyed := b.waitStatusFor(tok, id, 8*time.Minute)
	if destroyed.str("status") != "destroyed" {
		t.Fatalf("destroy: %s", destroyed.Raw)
	}
	if live := fake.Live(); len(live) != 0 {
		t.Errorf("EC2 still holds %+v after destroy", live)
	}
	if groups := fake.SecurityGroups(); len(groups) != 0 {
		t.Errorf("EC2 still holds security groups %+v after destroy", groups)
	}
	if n := len(b.expect(req{method: "GET", path: "/v1/nodes", token: tok}, 200).list()); n != 0 {
		t.Errorf("%d nodes listed after destroy", n)
	}

	// A key revoked between plan and apply: the apply fails with the
	// provider's message, nothing is registered, the log is kept.
	revoked := b.createCredential(tok, "aws old", "aws", map[string]string{"access_key_id": "AKIAREVOKEDTEST00001", "secret_access_key": "revoked-secret-0000"})
	bad := b.expect(req{method: "POST", path: "/v1/provision", token: tok, body: map[string]any{
		"provider": "aws", "region": region, "instance_type": itype, "name": "game-2", "credential_id": revoked.str("id"),
	}}, 201)
	b.expect(req{method: "POST", path: "/v1/provision/" + bad.str("id") + "/plan", token: tok}, 202)
	if r := b.waitStatusFor(tok, bad.str("id"), 8*time.Minute); r.str("status") != "planned" {
		t.Fatalf("plan with the soon-revoked key: %s", r.Raw)
	}
	fake.Refuse("AKIAREVOKEDTEST00001")
	b.expect(req{method: "POST", path: "/v1/provision/" + bad.str("id") + "/apply", token: tok}, 202)
	failed := b.waitStatusFor(tok, bad.str("id"), 8*time.Minute)
	if failed.str("status") != "failed" || !strings.Contains(failed.str("error"), "AuthFailure") && !strings.Contains(failed.str("error"), "InvalidClientTokenId") {
		t.Errorf("apply with a revoked key: %s", failed.Raw)
	}
	if failed.Body["node_id"] != nil || len(fake.Live()) != 0 || len(fake.SecurityGroups()) != 0 {
		t.Errorf("a failed apply registered a node or created an instance or a security group: %s", failed.Raw)
	}
	if logs := b.expect(req{method: "GET", path: "/v1/provision/" + bad.str("id") + "/logs", token: tok}, 200); !strings.Contains(string(logs.Raw), "apply") {
		t.Errorf("the failed apply's log is missing: %s", logs.Raw)
	}
	v = b.expect(req{method: "POST", path: "/v1/credentials/" + revoked.str("id") + "/verify", token: tok, timeout: 5 * time.Minute}, 200)
	if v.Body["ok"] != false || !strings.Contains(v.str("error"), "InvalidClientTokenId") {
		t.Errorf("verify a revoked key: %s", v.Raw)
	}
}

// TestAWSResizeAndFirewall changes an aws node's desired configuration —
// a firewall rule and a bigger instance type — and applies it with the
// real provider against the EC2 fake: the security group lets the new
// port in, the same instance has the new type (stopped, modified and
// started: never replaced), and the node records its new capacity.
func TestAWSResizeAndFirewall(t *testing.T) {
	if os.Getenv("SHARDFORM_TF_PLUGIN_MIRROR") == "" {
		t.Skip("SHARDFORM_TF_PLUGIN_MIRROR not set: no hashicorp/aws provider to run")
	}
	t.Parallel()
	fake := awsfake.New(t)
	fake.Allow(awsKeyID, awsSecret)
	catalog, err := planner.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	driver := providers.NewAWS(catalog, catalog.ReadAt)
	driver.Endpoint = fake.URL
	b := setup(t, setupOpts{provisioning: true, drivers: []providers.Driver{driver}, awsEndpoint: fake.URL, rateLimit: 100000})
	a := b.bootstrap("ops@example.com")
	tok := a.access
	b.createCredential(tok, "aws main", "aws", map[string]string{"access_key_id": awsKeyID, "secret_access_key": awsSecret})
	id := b.expect(req{method: "POST", path: "/v1/provision", token: tok, body: map[string]any{
		"provider": "aws", "region": "eu-central-1", "instance_type": "t3.small", "name": "mc-1"}}, 201).str("id")
	b.expect(req{method: "POST", path: "/v1/provision/" + id + "/plan", token: tok}, 202)
	if r := b.waitStatusFor(tok, id, 8*time.Minute); r.str("status") != "planned" {
		t.Fatalf("plan: %s", r.Raw)
	}
	b.expect(req{method: "POST", path: "/v1/provision/" + id + "/apply", token: tok}, 202)
	applied := b.waitStatusFor(tok, id, 8*time.Minute)
	if applied.str("status") != "applied" {
		t.Fatalf("apply: %s", applied.Raw)
	}
	nodeID := applied.str("node_id")
	before := fake.Live()
	if len(before) != 1 || before[0].InstanceType != "t3.small" {
		t.Fatalf("EC2 holds %+v", before)
	}

	rule := b.expect(req{method: "POST", path: "/v1/nodes/" + nodeID + "/firewall/rules", token: tok,
		body: map[string]any{"protocol": "tcp", "port": "25565", "description": "minecraft"}}, 202)
	b.waitRun(tok, rule.Body["run"].(map[string]any)["id"].(string), 8*time.Minute)
	if r := b.waitStatusFor(tok, id, 8*time.Minute); r.str("status") != "planned" {
		t.Fatalf("plan of the rule: %s", r.Raw)
	}
	// The resize plans both changes; apply: true applies them.
	run := b.expect(req{method: "POST", path: "/v1/nodes/" + nodeID + "/resize", token: tok, body: map[string]any{"instance_type": "t3.medium", "apply": true}}, 202)
	plan := b.waitRun(tok, run.str("id"), 8*time.Minute)
	changes := plan.Body["changes"].(map[string]any)
	if plan.str("status") != "succeeded" || changes["add"] != float64(0) || changes["destroy"] != float64(0) || changes["change"] != float64(2) {
		t.Fatalf("resize plan (the instance and its security group updated in place, nothing replaced): %s", plan.Raw)
	}
	deadline := time.Now().Add(8 * time.Minute)
	for {
		n := b.expect(req{method: "GET", path: "/v1/nodes/" + nodeID, token: tok}, 200)
		if n.str("instance_type") == "t3.medium" {
			if n.Body["memory_mb"] != float64(4096) {
				t.Errorf("node after the resize: %s", n.Raw)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the resize was never applied: %s", b.expect(req{method: "GET", path: "/v1/provision/" + id, token: tok}, 200).Raw)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if r := b.waitStatusFor(tok, id, 8*time.Minute); r.str("status") != "applied" {
		t.Fatalf("after the resize: %s", r.Raw)
	}
	if all, live := fake.Instances(), fake.Live(); len(all) != 1 || len(live) != 1 || live[0].ID != before[0].ID || live[0].InstanceType != "t3.medium" {
		t.Errorf("EC2 after the resize: %+v (a resize must keep the instance)", all)
	}
	groups := fake.SecurityGroups()
	if len(groups) != 1 || !groups[0].Allows("tcp", 25565, "0.0.0.0/0") || !groups[0].Allows("tcp", 25565, "::/0") || !groups[0].Allows("tcp", 22, "0.0.0.0/0") {
		t.Errorf("security group after the rule: %+v", groups)
	}
}
