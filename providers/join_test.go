package providers_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/shardform/shardform/providers"
)

// TestJoinCloudInit: with Join, the hetzner and aws drivers' user data runs
// the bootstrap with the request's registration token, which is a sensitive
// variable interpolated by Terraform (never a value in the configuration);
// the user data is not a reason to replace the machine; user strings stay
// escaped.
func TestJoinCloudInit(t *testing.T) {
	t.Parallel()
	join := &providers.Join{URL: "https://shardform.example.com/"}
	key := "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx0c2hhcmRmb3JtdGVzdGtleWZvcmdvbGRlbmZpbGU ops@example.com"
	for _, tt := range []struct {
		golden, resource string
		driver           providers.Driver
		req              providers.Request
	}{
		{"hetzner-join.tf.json", "hcloud_server", hetzner(t), providers.Request{ID: "0b7e2c4a-1111-2222-3333-444455556666", Name: "mc-1", Region: "fsn1",
			InstanceType: "cx33", SSHKeys: []string{key}, Labels: map[string]string{"evil": "${var.hcloud_token}"}, Join: join}},
		{"aws-join.tf.json", "aws_instance", awsDriver(t, ""), providers.Request{ID: "0b7e2c4a-1111-2222-3333-444455556666", Name: "mc-1", Region: "eu-central-1",
			InstanceType: "t3.small", SSHKeys: []string{key}, Labels: map[string]string{"evil": "${var.aws_secret_access_key}"}, Join: join}},
	} {
		t.Run(tt.golden, func(t *testing.T) {
			t.Parallel()
			got, err := tt.driver.Render(tt.req)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, tt.golden, got)
			var cfg struct {
				Variable map[string]struct {
					Sensitive bool `json:"sensitive"`
				} `json:"variable"`
				Resource map[string]map[string]map[string]any `json:"resource"`
			}
			if err := json.Unmarshal(got, &cfg); err != nil {
				t.Fatal(err)
			}
			if !cfg.Variable[providers.RegistrationTokenVariable].Sensitive {
				t.Errorf("variable %s not declared sensitive", providers.RegistrationTokenVariable)
			}
			node := cfg.Resource[tt.resource]["node"]
			ud, _ := node["user_data"].(string)
			if !strings.HasPrefix(ud, "#cloud-config\n") || !strings.Contains(ud, `"https://shardform.example.com", "${var.shardform_registration_token}"]`) ||
				!strings.Contains(ud, "/v1/agent/bootstrap.sh") || strings.Count(ud, "${") != 1 {
				t.Errorf("user_data:\n%s", ud)
			}
			if lc, _ := json.Marshal(node["lifecycle"]); string(lc) != `[{"ignore_changes":["user_data"]}]` {
				t.Errorf("lifecycle %s", lc)
			}
			if strings.Contains(string(got), "shardform_reg_") {
				t.Error("a token value in the configuration")
			}
		})
	}
	// Without Join, no token variable and no bootstrap.
	got, err := hetzner(t).Render(providers.Request{ID: "x", Name: "mc-1", Region: "fsn1", InstanceType: "cx33"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(got), providers.RegistrationTokenVariable) || strings.Contains(string(got), "user_data") {
		t.Error("a configuration without Join joins")
	}
}
