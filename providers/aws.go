package providers

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/shardform/shardform/domain"
	"github.com/shardform/shardform/planner"
)

// The Terraform variables that carry an AWS credential: passed as sensitive
// variables at run time, never written into the configuration.
const (
	AWSAccessKeyVariable = "aws_access_key_id"
	AWSSecretKeyVariable = "aws_secret_access_key"
)

// AWSProviderVersion is the hashicorp/aws release the configuration pins:
// the one the filesystem mirror holds (no registry access).
const AWSProviderVersion = "5.100.0"

// DebianImageOwner is the AWS account that publishes the official Debian
// AMIs (https://wiki.debian.org/Cloud/AmazonEC2Image).
const DebianImageOwner = "136693071363"

// validAMI is an EC2 image id.
var validAMI = regexp.MustCompile(`^ami-[0-9a-f]{8,17}$`)

// awsType is what the driver keeps of a catalog type beyond InstanceType.
type awsType struct {
	arch planner.Arch
	disk int
}

// AWS renders an aws_instance for the hashicorp/aws Terraform provider.
// Its catalog comes from the planner's pricing catalog. Without an image
// in the request it boots the newest official Debian 12 AMI of the type's
// architecture; SSH keys are delivered by cloud-init (no aws_key_pair).
//
// The instance is placed in the region's default VPC and subnet, in a
// security group of its own (the VPC's default group lets nothing in from
// outside): SSH (tcp 22) and ICMP echo in from anywhere, everything out,
// as the hetzner driver's firewall.
type AWS struct {
	// Endpoint, when set, is the EC2 and STS endpoint the provider calls
	// (SHARDFORM_AWS_ENDPOINT: tests and private clouds); empty: AWS's own.
	Endpoint string
	regions  []Region
	types    []InstanceType
	byName   map[string]awsType
	inRegion map[string]map[string]bool // region → the type names sold there
}

// NewAWS builds the driver from the AWS part of a pricing catalog, leaving
// out types that can no longer be ordered at now.
func NewAWS(c planner.Catalog, now time.Time) *AWS {
	a := &AWS{byName: map[string]awsType{}, inRegion: map[string]map[string]bool{}}
	seenRegion := map[string]bool{}
	addRegion := func(name string) {
		if !seenRegion[name] {
			seenRegion[name] = true
			a.regions = append(a.regions, Region{Name: name, Description: "AWS " + name})
		}
	}
	for _, l := range c.Locations {
		if l.Provider == "aws" {
			addRegion(l.Region)
		}
	}
	for _, t := range c.Types {
		if t.Provider != "aws" || t.StatusAt(now) == planner.StatusUnavailable {
			continue
		}
		addRegion(t.Region)
		addInRegion(a.inRegion, t.Region, t.Name)
		if _, seen := a.byName[t.Name]; seen {
			continue
		}
		a.byName[t.Name] = awsType{arch: t.Arch, disk: int(t.DiskGB)}
		a.types = append(a.types, InstanceType{
			Name: t.Name, VCPU: t.VCPU, MemoryMB: int(t.MemoryMiB), DiskGB: int(t.DiskGB),
			MonthlyPrice: t.Monthly.Amount(), Currency: t.Monthly.Currency,
		})
	}
	sort.Slice(a.regions, func(i, j int) bool { return a.regions[i].Name < a.regions[j].Name })
	sort.Slice(a.types, func(i, j int) bool { return a.types[i].Name < a.types[j].Name })
	return a
}

// Name implements Driver.
func (*AWS) Name() string { return "aws" }

// Regions implements Driver.
func (a *AWS) Regions() []Region { return a.regions }

// InstanceTypes implements Driver.
func (a *AWS) InstanceTypes() []InstanceType { return a.types }

// InstanceTypesIn implements RegionalTypes: the types the catalog sells in
// region.
func (a *AWS) InstanceTypesIn(region string) []InstanceType {
	return typesIn(a.types, a.inRegion[region])
}

// CredentialProvider implements Credentialed: an aws credential
// ({access_key_id, secret_access_key}).
func (*AWS) CredentialProvider() string { return "aws" }

// Variables implements Credentialed.
func (*AWS) Variables(secret map[string]string) map[string]string {
	return map[string]string{
		AWSAccessKeyVariable: secret["access_key_id"],
		AWSSecretKeyVariable: secret["secret_access_key"],
	}
}

// providerBlock is the aws provider's configuration. The credential comes
// from the sensitive variables alone: the instance metadata service is
// never asked (a worker running on EC2 must not fall back to its own
// role), and the run's environment carries no AWS_* variables.
func (a *AWS) providerBlock(region string) map[string]any {
	p := map[string]any{
		"region":                  escape(region),
		"access_key":              "${var." + AWSAccessKeyVariable + "}",
		"secret_key":              "${var." + AWSSecretKeyVariable + "}",
		"skip_metadata_api_check": true,
	}
	if a.Endpoint != "" {
		ep := escape(a.Endpoint)
		p["endpoints"] = []any{map[string]any{"ec2": ep, "sts": ep}}
		// A private cloud names its own regions.
		p["skip_region_validation"] = true
	}
	return p
}

func awsTerraformBlock(backend bool) map[string]any {
	t := map[string]any{
		"required_providers": map[string]any{
			"aws": map[string]any{"source": "hashicorp/aws", "version": AWSProviderVersion},
		},
	}
	if backend {
		t["backend"] = map[string]any{"http": map[string]any{}}
	}
	return t
}

func awsVariables() map[string]any {
	return map[string]any{
		AWSAccessKeyVariable: map[string]any{"type": "string", "sensitive": true},
		AWSSecretKeyVariable: map[string]any{"type": "string", "sensitive": true},
	}
}

// debianArch is the architecture part of Debian's AMI names.
func debianArch(arch planner.Arch) string {
	if arch == planner.ArchARM {
		return "arm64"
	}
	return "amd64"
}

// ec2Arch is EC2's name of the architecture (an image's "architecture").
func ec2Arch(arch planner.Arch) string {
	if arch == planner.ArchARM {
		return "arm64"
	}
	return "x86_64"
}

// cloudConfig is the instance's user data: a cloud-init document setting
// the host name and the authorized SSH keys. Every string is JSON-quoted,
// which YAML reads as a double-quoted scalar.
func cloudConfig(name string, keys []string) (string, error) {
	var b strings.Builder
	b.WriteString("#cloud-config\n")
	q, err := json.Marshal(name)
	if err != nil {
		return "", err
	}
	fmt.Fprintf(&b, "hostname: %s\n", q)
	if len(keys) > 0 {
		b.WriteString("ssh_authorized_keys:\n")
		for _, k := range keys {
			q, err := json.Marshal(strings.TrimSpace(k))
			if err != nil {
				return "", err
			}
			fmt.Fprintf(&b, "  - %s\n", q)
		}
	}
	return b.String(), nil
}

// Render implements Driver. It refuses an instance type the catalog does
// not know (the type's architecture picks the image) and an image that is
// not an AMI id.
func (a *AWS) Render(req Request) ([]byte, error) {
	t, ok := a.byName[req.InstanceType]
	if !ok {
		return nil, fmt.Errorf("aws: render: %w", domain.Invalid("instance_type", "unknown instance type %q; valid: %s", req.InstanceType, InstanceTypeNames(a)))
	}
	if !HasRegion(a, req.Region) {
		return nil, fmt.Errorf("aws: render: %w", domain.Invalid("region", "unknown region %q; valid: %s", req.Region, RegionNames(a)))
	}
	if req.Image != "" && !validAMI.MatchString(req.Image) {
		return nil, fmt.Errorf("aws: render: %w", domain.Invalid("image", "%q is not an AMI id (ami-...)", req.Image))
	}
	userData, err := cloudConfig(req.Name, req.SSHKeys)
	if err != nil {
		return nil, fmt.Errorf("aws: render: %w", err)
	}
	userData = escape(userData)
	if req.Join != nil {
		join, err := joinCloudConfig(req.Join)
		if err != nil {
			return nil, fmt.Errorf("aws: render: %w", err)
		}
		userData += join
	}
	tags := map[string]string{}
	for k, v := range req.Labels {
		tags[escape(k)] = escape(v)
	}
	tags["Name"] = escape(req.Name)
	tags["managed-by"] = "shardform"
	tags["shardform-provision"] = escape(req.ID)

	var data map[string]any
	ami := escape(req.Image)
	if req.Image == "" {
		ami = "${data.aws_ami.debian.id}"
		data = map[string]any{"aws_ami": map[string]any{"debian": map[string]any{
			"most_recent": true,
			"owners":      []string{DebianImageOwner},
			"filter": []any{
				map[string]any{"name": "name", "values": []string{"debian-12-" + debianArch(t.arch) + "-*"}},
				map[string]any{"name": "architecture", "values": []string{ec2Arch(t.arch)}},
				map[string]any{"name": "virtualization-type", "values": []string{"hvm"}},
			},
		}}}
	}
	instance := map[string]any{
		"ami":                    ami,
		"instance_type":          escape(req.InstanceType),
		"vpc_security_group_ids": []string{"${aws_security_group.node.id}"},
		"user_data":              userData, // escaped above
		"tags":                   tags,
		"volume_tags":            map[string]string{"managed-by": "shardform", "shardform-provision": escape(req.ID)},
		"root_block_device": []any{map[string]any{
			"volume_size":           t.disk,
			"volume_type":           "gp3",
			"encrypted":             true,
			"delete_on_termination": true,
		}},
		// IMDSv2 only: a request must carry a session token.
		"metadata_options": []any{map[string]any{"http_endpoint": "enabled", "http_tokens": "required"}},
	}
	if req.Join != nil {
		// The token is minted anew for every plan and used once at the
		// instance's first boot: a new one is no reason to replace it.
		instance["lifecycle"] = []any{map[string]any{"ignore_changes": []string{"user_data"}}}
	}
	vars := awsVariables()
	joinVariable(vars, req.Join)
	cfg := tfConfig{
		Terraform: awsTerraformBlock(true),
		Variable:  vars,
		Provider:  map[string]any{"aws": a.providerBlock(req.Region)},
		Data:      data,
		Resource: map[string]any{
			"aws_instance":       map[string]any{"node": instance},
			"aws_security_group": map[string]any{"node": awsSecurityGroup(req)},
		},
		Output: map[string]any{
			"server_id": map[string]any{"value": "${aws_instance.node.id}"},
			"ipv4":      map[string]any{"value": `${aws_instance.node.public_ip}`},
			"ipv6":      map[string]any{"value": `${try(aws_instance.node.ipv6_addresses[0], "")}`},
		},
	}
	return cfg.marshal("aws")
}

// awsSecurityGroup is the node's security group, the counterpart of the
// hetzner driver's firewall. Without a vpc_id it is created in the
// region's default VPC, where the instance (without a subnet_id) is
// launched too. The rules are inline: the provider replaces the group's
// default allow-all egress rule with the ones listed.
func awsSecurityGroup(req Request) map[string]any {
	rule := func(desc, protocol string, from, to int, v4, v6 []string) map[string]any {
		return map[string]any{
			"description": desc, "protocol": protocol, "from_port": from, "to_port": to,
			"cidr_blocks": v4, "ipv6_cidr_blocks": v6,
			"prefix_list_ids": []string{}, "security_groups": []string{}, "self": false,
		}
	}
	anyV4, anyV6 := []string{"0.0.0.0/0"}, []string{"::/0"}
	name := "shardform-" + escape(req.Name) + "-" + escape(shortID(req.ID))
	return map[string]any{
		"name": name,
		// Kept as first written whatever the rules: a new description would
		// replace the group (EC2 cannot change it).
		"description": "shardform node " + escape(req.Name) + ": SSH and ping in, all out",
		"tags":        map[string]string{"Name": name, "managed-by": "shardform", "shardform-provision": escape(req.ID)},
		"ingress":     awsIngress(req.firewall(), rule),
		"egress":      []any{rule("all out", "-1", 0, 0, anyV4, anyV6)},
	}
}

// awsIngress are the security group's ingress rules: one per tcp or udp
// rule (IPv4 and IPv6 sources together); an icmp rule is ping, ICMP type 8
// for its IPv4 sources and ICMPv6 type 128 for its IPv6 ones (from_port is
// the type, to_port the code).
func awsIngress(rules []FirewallRule, rule func(desc, protocol string, from, to int, v4, v6 []string) map[string]any) []any {
	out := []any{}
	for _, r := range rules {
		v4, v6 := r.SplitSources()
		v4, v6 = escapeList(v4), escapeList(v6)
		desc := escape(r.Description)
		if r.Protocol != "icmp" {
			out = append(out, rule(desc, escape(r.Protocol), r.PortLow, r.PortHigh, v4, v6))
			continue
		}
		if len(v4) > 0 {
			out = append(out, rule(desc, "icmp", 8, 0, v4, []string{}))
		}
		if len(v6) > 0 {
			out = append(out, rule(desc+" (IPv6)", "icmpv6", 128, 0, []string{}, v6))
		}
	}
	return out
}

// Node implements Driver.
func (*AWS) Node(outputs map[string]json.RawMessage) (Node, error) {
	var n Node
	var err error
	if n.ServerID, err = stringOutput(outputs, "server_id"); err != nil {
		return n, fmt.Errorf("aws: %w", err)
	}
	if n.IPv4, err = stringOutput(outputs, "ipv4"); err != nil {
		return n, fmt.Errorf("aws: %w", err)
	}
	if n.IPv6, err = stringOutput(outputs, "ipv6"); err != nil {
		return n, fmt.Errorf("aws: %w", err)
	}
	if n.ServerID == "" {
		return n, fmt.Errorf("aws: output %q is empty", "server_id")
	}
	return n, nil
}
