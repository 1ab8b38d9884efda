package providers_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shardform/shardform/internal/fake/awsfake"
	"github.com/shardform/shardform/internal/statetest"
	"github.com/shardform/shardform/providers"
	"github.com/shardform/shardform/store/storetest"
	"github.com/shardform/shardform/terraform"
)

// awsBundle is what an end-to-end aws test needs: a runner installing
// hashicorp/aws from the filesystem mirror, a fake EC2 + STS endpoint, and
// the driver pointed at it.
type awsBundle struct {
	runner *terraform.Runner
	fake   *awsfake.Server
	driver *providers.AWS
	pool   *pgxpool.Pool
	state  *statetest.Backends
}

// setupAWS skips unless SHARDFORM_TF_PLUGIN_MIRROR names the provider
// mirror (the registry cannot be reached).
func setupAWS(t *testing.T) *awsBundle {
	t.Helper()
	mirror := os.Getenv("SHARDFORM_TF_PLUGIN_MIRROR")
	if mirror == "" {
		t.Skip("SHARDFORM_TF_PLUGIN_MIRROR not set: no hashicorp/aws provider to run")
	}
	ctx := context.Background()
	url := storetest.NewDB(t)
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	bin, err := terraform.FindBinary(ctx, "", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r, err := terraform.NewRunner(terraform.Config{Binary: bin, DataDir: t.TempDir(), PluginMirror: mirror,
		LockTimeout: 10 * time.Second, GracePeriod: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	fake := awsfake.New(t)
	return &awsBundle{runner: r, fake: fake, driver: awsDriver(t, fake.URL), pool: pool, state: statetest.New(t, pool)}
}

// syncBuffer is a log writer safe for Terraform's stdout and stderr.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

const (
	testAccessKey = "AKIASHARDFORMTEST001"
	testSecretKey = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSHARDFORMKEY"
)

func testSecret() map[string]string {
	return map[string]string{"access_key_id": testAccessKey, "secret_access_key": testSecretKey}
}

// TestAWSApplyDestroy runs the rendered aws_instance with real Terraform and
// the real hashicorp/aws provider against the fake EC2 endpoint.
func TestAWSApplyDestroy(t *testing.T) {
	t.Parallel()
	b := setupAWS(t)
	b.fake.Allow(testAccessKey, testSecretKey) // signatures are checked
	ctx := context.Background()
	req := providers.Request{ID: "p-aws-1", Name: "mc-1", Region: "eu-central-1", InstanceType: "t3.small",
		SSHKeys: []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx0c2hhcmRmb3JtdGVzdGtleWZvcmdvbGRlbmZpbGU ops@example.com"},
		Labels:  map[string]string{"game": "minecraft", "evil": "${var.aws_secret_access_key}"}}
	cfg, err := b.driver.Render(req)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	ws, err := b.runner.Open(ctx, req.ID, cfg, logs, b.state.For(t, req.ID))
	if err != nil {
		t.Fatalf("open: %v\n%s", err, logs)
	}
	vars := b.driver.Variables(testSecret())
	plan, err := ws.Plan(ctx, vars, false)
	if err != nil {
		t.Fatalf("plan: %v\n%s\nunsupported actions: %v", err, logs, b.fake.Unsupported())
	}
	var addresses []string
	for _, r := range plan.Summary.Resources {
		addresses = append(addresses, r.Address)
	}
	sort.Strings(addresses)
	if plan.Summary.Add != 2 || !slices.Equal(addresses, []string{"aws_instance.node", "aws_security_group.node"}) {
		t.Fatalf("plan summary %+v", plan.Summary)
	}
	if len(b.fake.Instances()) != 0 || len(b.fake.SecurityGroups()) != 0 {
		t.Fatal("plan created an instance or a security group")
	}
	if err := ws.Apply(ctx, plan.File, vars); err != nil {
		t.Fatalf("apply: %v\n%s\nunsupported actions: %v", err, logs, b.fake.Unsupported())
	}
	outs, err := ws.Outputs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	node, err := b.driver.Node(outs)
	if err != nil {
		t.Fatalf("node from %v: %v", outs, err)
	}
	live := b.fake.Live()
	if len(live) != 1 {
		t.Fatalf("%d live instances after apply, want 1: %+v", len(live), live)
	}
	in := live[0]
	if node.ServerID != in.ID || node.IPv4 != in.PublicIP || node.IPv4 == "" || node.IPv6 != "" {
		t.Errorf("node %+v, instance %+v", node, in)
	}
	if in.InstanceType != "t3.small" || in.ImageID != "ami-0de12a4d64000000a" || in.Region != "eu-central-1" {
		t.Errorf("instance %+v: wrong type, image (the amd64 Debian 12 lookup) or region", in)
	}
	wantTags := map[string]string{"Name": "mc-1", "game": "minecraft", "evil": "${var.aws_secret_access_key}", "managed-by": "shardform", "shardform-provision": req.ID}
	for k, v := range wantTags {
		if in.Tags[k] != v {
			t.Errorf("tag %s = %q, want %q", k, in.Tags[k], v)
		}
	}
	if in.VolumeSize != 50 || in.VolumeType != "gp3" || !in.Encrypted || in.HTTPTokens != "required" {
		t.Errorf("instance %+v: root volume or metadata options not as rendered", in)
	}

	// The instance is in a group of its own that lets SSH and ping in.
	groups := b.fake.SecurityGroups()
	if len(groups) != 1 {
		t.Fatalf("%d security groups after apply, want 1: %+v", len(groups), groups)
	}
	sg := groups[0]
	if !slices.Equal(in.SecurityGroupIDs, []string{sg.ID}) {
		t.Errorf("instance in groups %v, want only %s", in.SecurityGroupIDs, sg.ID)
	}
	if sg.Name != "shardform-mc-1-p-aws-1" || sg.Region != "eu-central-1" || sg.Tags["managed-by"] != "shardform" || sg.Tags["shardform-provision"] != req.ID {
		t.Errorf("security group %+v: name, region or tags not as rendered", sg)
	}
	for _, cidr := range []string{"0.0.0.0/0", "::/0"} {
		if !sg.Allows("tcp", 22, cidr) {
			t.Errorf("the security group does not let SSH in from %s: %+v", cidr, sg.Rules)
		}
	}
	if !sg.Allows("icmp", 8, "0.0.0.0/0") || !sg.Allows("icmpv6", 128, "::/0") {
		t.Errorf("the security group does not let ping in: %+v", sg.Rules)
	}
	if sg.Allows("tcp", 80, "0.0.0.0/0") {
		t.Errorf("the security group lets more than SSH in over tcp: %+v", sg.Rules)
	}
	var egress []string
	for _, r := range sg.Rules {
		if r.Egress {
			egress = append(egress, r.Protocol+" "+r.CIDR)
		}
	}
	if sort.Strings(egress); !slices.Equal(egress, []string{"-1 0.0.0.0/0", "-1 ::/0"}) {
		t.Errorf("egress rules %v, want all traffic out over IPv4 and IPv6", egress)
	}

	// The fake reads back what it was given: a second plan has nothing to do.
	again, err := ws.Plan(ctx, vars, false)
	if err != nil {
		t.Fatalf("second plan: %v\n%s", err, logs)
	}
	if n := again.Summary.Add + again.Summary.Change + again.Summary.Destroy; n != 0 {
		t.Errorf("second plan wants changes: %+v\n%s", again.Summary, logs)
	}

	// The keys are only ever in the removed var file, never in the config.
	files, err := filepath.Glob(filepath.Join(ws.Dir, "*.tf.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("config files %v, %v", files, err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(data), testAccessKey) || strings.Contains(string(data), testSecretKey) {
			t.Errorf("%s holds the AWS keys", f)
		}
	}
	if all := logs.String(); strings.Contains(all, testSecretKey) || strings.Contains(all, testAccessKey) {
		t.Errorf("the AWS keys appear in Terraform's output")
	}
	// The provider is linked from the cache or mirror, never copied.
	assertProviderLinked(t, ws.DataDir)

	if err := ws.Destroy(ctx, vars); err != nil {
		t.Fatalf("destroy: %v\n%s\nunsupported actions: %v", err, logs, b.fake.Unsupported())
	}
	if live := b.fake.Live(); len(live) != 0 {
		t.Errorf("%d live instances after destroy: %+v", len(live), live)
	}
	all := b.fake.Instances()
	if len(all) != 1 || all[0].State != awsfake.StateTerminated {
		t.Errorf("instances after destroy: %+v", all)
	}
	if groups := b.fake.SecurityGroups(); len(groups) != 0 {
		t.Errorf("security groups left after destroy: %+v", groups)
	}
	calls := b.fake.Calls()
	for _, action := range []string{"GetCallerIdentity", "DescribeImages", "RunInstances", "DescribeInstances", "TerminateInstances",
		"CreateSecurityGroup", "AuthorizeSecurityGroupIngress", "DeleteSecurityGroup"} {
		if calls[action] == 0 {
			t.Errorf("the provider never called %s", action)
		}
	}
	// RunInstances and TerminateInstances are idempotent (a ClientToken, an
	// instance id) and the provider may repeat them (a CI run on a busy
	// machine saw RunInstances twice, with one instance launched): what
	// counts is the one instance launched and terminated, checked above.
	// Creating a security group is not idempotent.
	if calls["CreateSecurityGroup"] != 1 || calls["DeleteSecurityGroup"] != 1 {
		t.Errorf("CreateSecurityGroup %d, DeleteSecurityGroup %d times; want 1 each", calls["CreateSecurityGroup"], calls["DeleteSecurityGroup"])
	}
	if u := b.fake.Unsupported(); len(u) != 0 {
		t.Errorf("the provider called actions the fake does not implement: %v", u)
	}
	t.Logf("EC2/STS calls: %v", calls)
}

// assertProviderLinked checks that the workspace's copy of hashicorp/aws is
// a link into the plugin cache or mirror, not a 400 MB copy.
func assertProviderLinked(t *testing.T, dataDir string) {
	t.Helper()
	root := filepath.Join(dataDir, "providers", "registry.terraform.io", "hashicorp", "aws")
	found := false
	err := filepath.Walk(root, func(path string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if info.Mode()&os.ModeSymlink != 0 {
			found = true
			return nil
		}
		if info.Mode().IsRegular() && info.Size() > 10<<20 {
			t.Errorf("%s is a %d MB copy of the provider", path, info.Size()>>20)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", root, err)
	}
	if !found {
		t.Errorf("no link to the cached provider under %s", root)
	}
}

// TestAWSRefusedCredentials: a key AWS refuses fails the run with the
// provider's error message, and no instance is created.
func TestAWSRefusedCredentials(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// refuseAfterPlan revokes the key between plan and apply.
		refuseAfterPlan bool
		secret          map[string]string
		wantErr         string
	}{
		{"unknown key", false, map[string]string{"access_key_id": "AKIASTOLEN0000000000", "secret_access_key": "x"}, "InvalidClientTokenId"},
		{"wrong secret", false, map[string]string{"access_key_id": testAccessKey, "secret_access_key": "not-the-secret"}, "SignatureDoesNotMatch"},
		{"revoked before apply", true, testSecret(), "InvalidClientTokenId"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setupAWS(t)
			b.fake.Allow(testAccessKey, testSecretKey)
			ctx := context.Background()
			req := providers.Request{ID: "p-refused", Name: "nope", Region: "us-east-1", InstanceType: "t4g.small"}
			cfg, err := b.driver.Render(req)
			if err != nil {
				t.Fatal(err)
			}
			logs := &syncBuffer{}
			ws, err := b.runner.Open(ctx, req.ID, cfg, logs, b.state.For(t, req.ID))
			if err != nil {
				t.Fatalf("open: %v\n%s", err, logs)
			}
			vars := b.driver.Variables(tt.secret)
			plan, err := ws.Plan(ctx, vars, false)
			if tt.refuseAfterPlan {
				if err != nil {
					t.Fatalf("plan: %v\n%s", err, logs)
				}
				b.fake.Refuse(testAccessKey)
				err = ws.Apply(ctx, plan.File, vars)
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err %v, want the provider's %s error\n%s", err, tt.wantErr, logs)
			}
			t.Logf("terraform error: %v", err)
			if n := len(b.fake.Instances()); n != 0 {
				t.Errorf("%d instances created with a refused key", n)
			}
		})
	}
}
