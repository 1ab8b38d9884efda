package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/shardform/shardform/internal/fake/awsfake"
	"github.com/shardform/shardform/planner"
	"github.com/shardform/shardform/providers"
	"github.com/shardform/shardform/provision"
	"github.com/shardform/shardform/terraform"
)

// BenchmarkAWSRequest provisions with the real hashicorp/aws provider (from
// SHARDFORM_TF_PLUGIN_MIRROR) against the local fake of EC2 and STS: per
// iteration one request through shardform (POST plan to `applied`: queue,
// plan job, apply job, node registered) and then the same configuration with
// the plain terraform CLI, remote state in the pg backend (`workspace new`
// untimed, then `plan -out` and `apply <plan>` timed), in the same run.
// Loading the provider (~430 MB, ~0.6 s of CPU) dominates both, so the
// figure that matters besides the wall times is how many Terraform
// processes shardform runs for the request: each of them loads it, and
// there must be two (plan and apply). The shared init of the aws provider
// set and the CLI's init happen before the timer starts.
func BenchmarkAWSRequest(b *testing.B) {
	mirror := os.Getenv("SHARDFORM_TF_PLUGIN_MIRROR")
	if mirror == "" {
		b.Skip("SHARDFORM_TF_PLUGIN_MIRROR not set: no hashicorp/aws provider to run")
	}
	const keyID, secret = "AKIASHARDFORMBENCH01", "aws-bench-secret-key-0123456789abcdef"
	fake := awsfake.New(b)
	fake.Allow(keyID, secret)
	catalog, err := planner.Snapshot()
	if err != nil {
		b.Fatal(err)
	}
	driver := providers.NewAWS(catalog, catalog.ReadAt)
	driver.Endpoint = fake.URL
	region, itype := driver.Regions()[0].Name, "t3.small"
	if _, ok := providers.FindInstanceType(driver, itype); !ok {
		itype = driver.InstanceTypes()[0].Name
	}
	e := newEnvWith(b, envOptions{terraformWorkers: 2, drivers: []providers.Driver{driver}, pluginMirror: mirror})
	e.call("POST", "/v1/credentials", map[string]any{"name": "aws bench", "provider": "aws",
		"secret": map[string]string{"access_key_id": keyID, "secret_access_key": secret}}, nil)
	request := func(name string) (planToApplied time.Duration) {
		var p provisionView
		e.call("POST", "/v1/provision", map[string]any{"provider": "aws", "region": region, "instance_type": itype, "name": name}, &p)
		start := time.Now()
		e.call("POST", "/v1/provision/"+p.ID+"/plan", nil, nil)
		e.wait(p.ID, provision.StatusPlanned)
		e.call("POST", "/v1/provision/"+p.ID+"/apply", nil, nil)
		e.wait(p.ID, provision.StatusApplied)
		return time.Since(start)
	}
	request("aws-warm-up") // the provider set's shared init

	// The plain CLI: the same configuration with the pg backend, the
	// provider from the same mirror, the credential in a var file.
	dir := b.TempDir()
	cliConfig := filepath.Join(dir, "terraform.rc")
	if err := os.WriteFile(cliConfig, []byte(fmt.Sprintf("provider_installation {\n  filesystem_mirror {\n    path    = %s\n    include = [\"*/*/*\"]\n  }\n}\n", strconv.Quote(mirror))), 0o600); err != nil {
		b.Fatal(err)
	}
	configure := func(i int) { // request i's configuration (its names are unique)
		cfg, err := driver.Render(providers.Request{ID: fmt.Sprintf("cli-%d", i), Name: fmt.Sprintf("aws-cli-%d", i), Region: region, InstanceType: itype})
		if err != nil {
			b.Fatal(err)
		}
		var m map[string]any
		_ = json.Unmarshal(cfg, &m)
		m["terraform"].(map[string]any)["backend"] = map[string]any{"pg": map[string]any{}}
		cfg, _ = json.Marshal(m)
		vars, _ := json.Marshal(driver.Variables(map[string]string{"access_key_id": keyID, "secret_access_key": secret}))
		for name, data := range map[string][]byte{terraform.ConfigFile: cfg, "terraform.tfvars.json": vars} {
			if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
				b.Fatal(err)
			}
		}
	}
	configure(0)
	tf := func(args ...string) {
		cmd := exec.Command(e.bin, args...)
		cmd.Dir = dir
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "TF_IN_AUTOMATION=1", "CHECKPOINT_DISABLE=1", "TF_CLI_CONFIG_FILE=" + cliConfig,
			"PG_CONN_STR=" + e.pool.Config().ConnString()}
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("terraform %v: %v\n%s", args, err, out)
		}
	}
	tf("init", "-input=false")

	b.ResetTimer()
	var sf, cli time.Duration
	var sfCPU, cliCPU cpuSample
	before := e.runner.Stats()
	for i := range b.N {
		c0 := sampleCPU(b)
		sf += request(fmt.Sprintf("aws-%d", i))
		c1 := sampleCPU(b)
		configure(i)
		tf("workspace", "new", fmt.Sprintf("cli-%d", i))
		c2, start := sampleCPU(b), time.Now()
		tf("plan", "-input=false", "-out=cli.tfplan")
		tf("apply", "-input=false", "cli.tfplan")
		cli += time.Since(start)
		c3 := sampleCPU(b)
		sfCPU = sfCPU.add(c1.sub(c0))
		cliCPU = cliCPU.add(c3.sub(c2))
	}
	b.StopTimer()
	// The hot path's processes, and apart from them the render of each
	// plan for review (show -json, queued below users' runs: eager
	// SHARDFORM_PLAN_RENDER, the default), which a request never waits for.
	processes, renders := 0, 0
	for cmd, st := range e.runner.Stats() {
		k := st.Processes - before[cmd].Processes
		if k == 0 {
			continue
		}
		if cmd == "show" {
			renders += k
		} else {
			processes += k
		}
		cpu := st.CPU() - before[cmd].CPU()
		b.Logf("shardform's terraform %s: %d processes, each %v CPU with the provider's", cmd, k, (cpu / time.Duration(k)).Round(time.Millisecond))
	}
	n := float64(b.N)
	b.ReportMetric(sf.Seconds()/n, "shardform-s/request")
	b.ReportMetric(cli.Seconds()/n, "plain-cli-s/request")
	b.ReportMetric(float64(processes)/n, "tf-processes/request")
	b.ReportMetric(float64(renders)/n, "render-processes/request")
	sfCPU.report(b, "shardform-", b.N)
	cliCPU.report(b, "plain-cli-", b.N)
	if processes != 2*b.N {
		b.Errorf("shardform ran %d Terraform processes for %d requests, want 2 per request (plan and apply)", processes, b.N)
	}
	if live := fake.Live(); len(live) != 2*b.N+1 {
		b.Errorf("EC2 holds %d instances after %d requests through shardform and %d with the CLI (and the warm-up)", len(live), b.N+1, b.N)
	}
}
