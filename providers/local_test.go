package providers_test

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shardform/shardform/internal/statetest"
	"github.com/shardform/shardform/providers"
	"github.com/shardform/shardform/store/storetest"
	"github.com/shardform/shardform/terraform"
)

var update = flag.Bool("update", false, "rewrite golden files")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file:\n%s", name, got)
	}
}

// testRules are a game server's firewall: SSH from one network, Minecraft
// from anywhere, a UDP range, ping over IPv6 only.
var testRules = []providers.FirewallRule{
	{Protocol: "tcp", PortLow: 22, PortHigh: 22, SourceIPs: []string{"203.0.113.0/24"}, Description: "ssh from the office"},
	{Protocol: "tcp", PortLow: 25565, PortHigh: 25565, SourceIPs: []string{"0.0.0.0/0", "::/0"}, Description: "minecraft"},
	{Protocol: "udp", PortLow: 27015, PortHigh: 27030, SourceIPs: []string{"0.0.0.0/0"}, Description: "${steam}"},
	{Protocol: "icmp", SourceIPs: []string{"::/0"}, Description: "ping"},
}

func TestLocalRender(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		driver providers.Local
		req    providers.Request
	}{
		{"local-basic.tf.json", providers.Local{}, providers.Request{ID: "p1", Name: "web-1", Region: "local", InstanceType: "local-small", Labels: map[string]string{"game": "valheim"}}},
		{"local-slow.tf.json", providers.Local{ApplyDelay: 5 * time.Second}, providers.Request{ID: "p2", Name: "slow", Region: "local", InstanceType: "local-large"}},
		{"local-escaped.tf.json", providers.Local{}, providers.Request{ID: "p3", Name: "x", Region: "local", InstanceType: "local-small", Labels: map[string]string{"evil": `${file("/etc/passwd")}`, "tmpl": "%{ if true }x%{ endif }"}}},
		{"local-firewall.tf.json", providers.Local{}, providers.Request{ID: "p4", Name: "mc-1", Region: "local", InstanceType: "local-medium", Firewall: testRules}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.driver.Render(tt.req)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, tt.name, got)
		})
	}
}

// TestLocalApply runs the rendered configuration with real Terraform: user
// strings stay literal, and the outputs make a node.
func TestLocalApply(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := storetest.NewDB(t)
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	bin, err := terraform.FindBinary(ctx, "", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r, err := terraform.NewRunner(terraform.Config{Binary: bin, DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	d := providers.Local{}
	cfg, err := d.Render(providers.Request{ID: "p1", Name: "web-1", Region: "local", InstanceType: "local-small", Labels: map[string]string{"evil": `${file("/etc/passwd")}`}})
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	backends := statetest.New(t, pool)
	ws, err := r.Open(ctx, "p1", cfg, &logs, backends.For(t, "p1"))
	if err != nil {
		t.Fatalf("%v\n%s", err, logs.String())
	}
	plan, err := ws.Plan(ctx, nil, false)
	if err != nil {
		t.Fatalf("%v\n%s", err, logs.String())
	}
	if err := ws.Apply(ctx, plan.File, nil); err != nil {
		t.Fatalf("%v\n%s", err, logs.String())
	}
	// The applied state holds the label as written: not evaluated.
	state := backends.State(t, "p1")
	if strings.Contains(state, "root:x:0:0") || bytes.Contains(logs.Bytes(), []byte("root:x:0:0")) {
		t.Fatal("a label was evaluated as a Terraform template")
	}
	if !strings.Contains(state, `${file(\"/etc/passwd\")}`) {
		t.Errorf("the literal label is not in the state:\n%s", state)
	}
	outs, err := ws.Outputs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	node, err := d.Node(outs)
	if err != nil {
		t.Fatal(err)
	}
	if node.ServerID == "" || node.IPv4 != "127.0.0.1" || node.IPv6 != "::1" {
		t.Errorf("node %+v", node)
	}
}

func TestRegistry(t *testing.T) {
	t.Parallel()
	r := providers.NewRegistry(providers.Local{})
	d, ok := r.Get("local")
	if !ok || !providers.HasRegion(d, "local") || providers.HasRegion(d, "mars") {
		t.Fatal("local driver lookups wrong")
	}
	if it, ok := providers.FindInstanceType(d, "local-medium"); !ok || it.VCPU != 2 || it.MemoryMB != 4096 {
		t.Errorf("local-medium = %+v", it)
	}
	if _, ok := r.Get("gcp"); ok {
		t.Error("unknown driver found")
	}
	if got := providers.InstanceTypeNames(d); got != "local-small, local-medium, local-large" {
		t.Errorf("names %q", got)
	}
}
