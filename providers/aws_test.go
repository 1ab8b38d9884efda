package providers_test

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shardform/shardform/domain"
	"github.com/shardform/shardform/planner"
	"github.com/shardform/shardform/providers"
)

func awsDriver(t *testing.T, endpoint string) *providers.AWS {
	t.Helper()
	cat, err := planner.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	a := providers.NewAWS(cat, time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC))
	a.Endpoint = endpoint
	return a
}

func TestAWSCatalog(t *testing.T) {
	t.Parallel()
	a := awsDriver(t, "")
	for _, region := range []string{"us-east-1", "eu-central-1", "eu-west-1"} {
		if !providers.HasRegion(a, region) {
			t.Errorf("region %s missing", region)
		}
	}
	tests := []struct {
		name      string
		vcpu, mem int
	}{
		{"t3.small", 2, 2048},
		{"t4g.medium", 2, 4096},
		{"m7i.2xlarge", 8, 32768},
	}
	for _, tt := range tests {
		it, ok := providers.FindInstanceType(a, tt.name)
		if !ok || it.VCPU != tt.vcpu || it.MemoryMB != tt.mem || it.DiskGB != 50 || it.MonthlyPrice == "" || it.Currency != "USD" {
			t.Errorf("%s = %+v, %v", tt.name, it, ok)
		}
	}
	if _, ok := providers.FindInstanceType(a, "cx23"); ok {
		t.Error("a hetzner type is offered by the aws driver")
	}
	if a.Name() != "aws" || a.CredentialProvider() != "aws" {
		t.Errorf("name %q, credential provider %q", a.Name(), a.CredentialProvider())
	}
}

func TestAWSRender(t *testing.T) {
	t.Parallel()
	key := "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx0c2hhcmRmb3JtdGVzdGtleWZvcmdvbGRlbmZpbGU ops@example.com"
	tests := []struct {
		golden   string
		endpoint string
		req      providers.Request
	}{
		{"aws-instance.tf.json", "", providers.Request{ID: "0b7e2c4a-1111-2222-3333-444455556666", Name: "mc-1", Region: "eu-central-1", InstanceType: "t3.small",
			SSHKeys: []string{key}, Labels: map[string]string{"game": "minecraft", "evil": "${var.aws_secret_access_key}"}}},
		{"aws-graviton.tf.json", "", providers.Request{ID: "p2", Name: "arm-1", Region: "us-east-1", InstanceType: "c7g.large"}},
		{"aws-endpoint-image.tf.json", "http://127.0.0.1:4566", providers.Request{ID: "p3", Name: "own-image", Region: "eu-west-1", InstanceType: "m7i.large",
			Image: "ami-0123456789abcdef0", SSHKeys: []string{key, `ssh-rsa AAAAB3 "quoted" %{ if true }x%{ endif }`}}},
		{"aws-firewall.tf.json", "", providers.Request{ID: "p4", Name: "mc-1", Region: "eu-central-1", InstanceType: "t3.medium", Firewall: testRules}},
	}
	for _, tt := range tests {
		t.Run(tt.golden, func(t *testing.T) {
			t.Parallel()
			got, err := awsDriver(t, tt.endpoint).Render(tt.req)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, tt.golden, got)
			var cfg struct {
				Terraform struct {
					RequiredProviders map[string]struct{ Source, Version string } `json:"required_providers"`
				} `json:"terraform"`
				Provider map[string]map[string]any `json:"provider"`
				Data     map[string]any            `json:"data"`
				Resource struct {
					Instance map[string]struct {
						SecurityGroups []string `json:"vpc_security_group_ids"`
					} `json:"aws_instance"`
					SecurityGroup map[string]struct {
						Name    string `json:"name"`
						Ingress []struct {
							Protocol       string   `json:"protocol"`
							FromPort       int      `json:"from_port"`
							ToPort         int      `json:"to_port"`
							CIDRBlocks     []string `json:"cidr_blocks"`
							IPv6CIDRBlocks []string `json:"ipv6_cidr_blocks"`
						} `json:"ingress"`
					} `json:"aws_security_group"`
				} `json:"resource"`
			}
			if err := json.Unmarshal(got, &cfg); err != nil {
				t.Fatal(err)
			}
			if p := cfg.Terraform.RequiredProviders["aws"]; p.Source != "hashicorp/aws" || p.Version != providers.AWSProviderVersion {
				t.Errorf("required provider %+v", p)
			}
			aws := cfg.Provider["aws"]
			if aws["access_key"] != "${var.aws_access_key_id}" || aws["secret_key"] != "${var.aws_secret_access_key}" {
				t.Errorf("provider credentials are not the sensitive variables: %v", aws)
			}
			if _, ok := aws["endpoints"]; ok != (tt.endpoint != "") {
				t.Errorf("endpoints block present %v with endpoint %q", ok, tt.endpoint)
			}
			if _, ok := cfg.Data["aws_ami"]; ok != (tt.req.Image == "") {
				t.Errorf("AMI lookup present %v with image %q", ok, tt.req.Image)
			}
			// The node's own security group lets SSH in: the VPC's default
			// group would not.
			if sgs := cfg.Resource.Instance["node"].SecurityGroups; len(sgs) != 1 || sgs[0] != "${aws_security_group.node.id}" {
				t.Errorf("instance security groups %v, want the node's group alone", sgs)
			}
			sg := cfg.Resource.SecurityGroup["node"]
			if want := "shardform-" + tt.req.Name + "-"; !strings.HasPrefix(sg.Name, want) {
				t.Errorf("security group name %q, want %s<short id>", sg.Name, want)
			}
			ssh := false
			for _, r := range sg.Ingress {
				ssh = ssh || r.Protocol == "tcp" && r.FromPort == 22 && r.ToPort == 22 &&
					slices.Equal(r.CIDRBlocks, []string{"0.0.0.0/0"}) && slices.Equal(r.IPv6CIDRBlocks, []string{"::/0"})
			}
			if ssh != (tt.req.Firewall == nil) {
				// The default rules let SSH in from anywhere; testRules from one network only.
				t.Errorf("security group ingress %+v: tcp 22 from anywhere is %v", sg.Ingress, ssh)
			}
		})
	}
}

func TestAWSRenderEscapesUserStrings(t *testing.T) {
	t.Parallel()
	got, err := awsDriver(t, "").Render(providers.Request{ID: "p1", Name: "x", Region: "eu-west-1", InstanceType: "t3.small",
		SSHKeys: []string{`ssh-ed25519 AAAA ${file("/etc/passwd")}`}, Labels: map[string]string{"evil": "${var.aws_secret_access_key}"}})
	if err != nil {
		t.Fatal(err)
	}
	s := string(got)
	for _, want := range []string{`"evil": "$${var.aws_secret_access_key}"`, `$${file(\\\"/etc/passwd\\\")}`} {
		if !strings.Contains(s, want) {
			t.Errorf("rendered config lacks %s:\n%s", want, s)
		}
	}
}

func TestAWSRenderRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		req   providers.Request
		field string
	}{
		{"unknown type", providers.Request{ID: "p", Name: "x", Region: "eu-west-1", InstanceType: "t9.huge"}, "instance_type"},
		{"hetzner type", providers.Request{ID: "p", Name: "x", Region: "eu-west-1", InstanceType: "cx23"}, "instance_type"},
		{"unknown region", providers.Request{ID: "p", Name: "x", Region: "mars-north-1", InstanceType: "t3.small"}, "region"},
		{"image not an AMI", providers.Request{ID: "p", Name: "x", Region: "eu-west-1", InstanceType: "t3.small", Image: "debian-12"}, "image"},
		{"image with template", providers.Request{ID: "p", Name: "x", Region: "eu-west-1", InstanceType: "t3.small", Image: "ami-${var.x}"}, "image"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := awsDriver(t, "").Render(tt.req)
			var verr *domain.ValidationError
			if !errors.As(err, &verr) || verr.Field != tt.field {
				t.Fatalf("err %v, want a validation error on %s", err, tt.field)
			}
		})
	}
}

func TestAWSVariables(t *testing.T) {
	t.Parallel()
	got := awsDriver(t, "").Variables(map[string]string{"access_key_id": "AKIAEXAMPLE", "secret_access_key": "wJalrXUtnFEMI"})
	if len(got) != 2 || got[providers.AWSAccessKeyVariable] != "AKIAEXAMPLE" || got[providers.AWSSecretKeyVariable] != "wJalrXUtnFEMI" {
		t.Errorf("variables %v", got)
	}
}

func TestAWSNode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		outputs map[string]string
		want    providers.Node
		wantErr bool
	}{
		{"dual stack", map[string]string{"server_id": `"i-0abc"`, "ipv4": `"203.0.113.7"`, "ipv6": `"2001:db8::1"`}, providers.Node{ServerID: "i-0abc", IPv4: "203.0.113.7", IPv6: "2001:db8::1"}, false},
		{"no ipv6", map[string]string{"server_id": `"i-0abc"`, "ipv4": `"203.0.113.7"`, "ipv6": `""`}, providers.Node{ServerID: "i-0abc", IPv4: "203.0.113.7"}, false},
		{"missing id", map[string]string{"ipv4": `"x"`, "ipv6": `""`}, providers.Node{}, true},
		{"empty id", map[string]string{"server_id": `""`, "ipv4": `"x"`, "ipv6": `""`}, providers.Node{}, true},
		{"number", map[string]string{"server_id": `"i-1"`, "ipv4": `4`, "ipv6": `""`}, providers.Node{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			outs := map[string]json.RawMessage{}
			for k, v := range tt.outputs {
				outs[k] = json.RawMessage(v)
			}
			n, err := awsDriver(t, "").Node(outs)
			if (err != nil) != tt.wantErr || !tt.wantErr && n != tt.want {
				t.Fatalf("node %+v, %v; want %+v (error %v)", n, err, tt.want, tt.wantErr)
			}
		})
	}
}
