package awsfake_test

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/shardform/shardform/internal/fake/awsfake"
)

// call posts a Query API request with a SigV4-shaped Authorization header
// (not a valid signature: no key is registered, so none is checked).
func call(t *testing.T, s *awsfake.Server, key string, form url.Values) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.URL, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+key+"/20260101/eu-west-1/ec2/aws4_request, SignedHeaders=host;x-amz-date, Signature=00")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

func TestLifecycle(t *testing.T) {
	t.Parallel()
	s := awsfake.New(t)
	status, body := call(t, s, "AKIA1", url.Values{"Action": {"RunInstances"}, "ImageId": {"ami-0de12a4d64000000a"}, "InstanceType": {"t3.small"},
		"MinCount": {"1"}, "MaxCount": {"1"}, "TagSpecification.1.ResourceType": {"instance"},
		"TagSpecification.1.Tag.1.Key": {"Name"}, "TagSpecification.1.Tag.1.Value": {"web-1"}})
	if status != http.StatusOK || !strings.Contains(body, `xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"`) || !strings.Contains(body, "<name>pending</name>") {
		t.Fatalf("RunInstances: %d %s", status, body)
	}
	live := s.Live()
	if len(live) != 1 || live[0].Tags["Name"] != "web-1" || live[0].Region != "eu-west-1" || !strings.HasPrefix(live[0].PublicIP, "198.51.100.") {
		t.Fatalf("live %+v", live)
	}
	id := live[0].ID
	tests := []struct {
		form       url.Values
		wantStatus int
		want       string
	}{
		{url.Values{"Action": {"DescribeInstances"}, "InstanceId.1": {id}}, http.StatusOK, "<name>running</name>"},
		{url.Values{"Action": {"DescribeInstances"}, "InstanceId.1": {"i-0000000000000dead"}}, http.StatusBadRequest, "InvalidInstanceID.NotFound"},
		{url.Values{"Action": {"DescribeInstanceAttribute"}, "InstanceId": {id}, "Attribute": {"disableApiTermination"}}, http.StatusOK, "<disableApiTermination><value>false</value>"},
		{url.Values{"Action": {"DescribeImages"}, "Owner.1": {"136693071363"}, "Filter.1.Name": {"name"}, "Filter.1.Value.1": {"debian-12-arm64-*"}}, http.StatusOK, "<architecture>arm64</architecture>"},
		{url.Values{"Action": {"TerminateInstances"}, "InstanceId.1": {id}}, http.StatusOK, "<name>shutting-down</name>"},
		{url.Values{"Action": {"DescribeInstances"}, "InstanceId.1": {id}}, http.StatusOK, "<name>terminated</name>"},
		{url.Values{"Action": {"CreateKeyPair"}}, http.StatusBadRequest, "The action CreateKeyPair is not valid"},
		{url.Values{"Action": {"GetCallerIdentity"}}, http.StatusOK, "<Account>" + awsfake.AccountID + "</Account>"},
	}
	for _, tt := range tests {
		status, body := call(t, s, "AKIA1", tt.form)
		if status != tt.wantStatus || !strings.Contains(body, tt.want) {
			t.Errorf("%s: %d %s; want %d with %s", tt.form.Get("Action"), status, body, tt.wantStatus, tt.want)
		}
	}
	if len(s.Live()) != 0 || s.Instances()[0].State != awsfake.StateTerminated {
		t.Errorf("after terminate: %+v", s.Instances())
	}
	if calls := s.Calls(); calls["DescribeInstances"] != 3 || calls["RunInstances"] != 1 {
		t.Errorf("calls %v", calls)
	}
	if u := s.Unsupported(); len(u) != 1 || u[0] != "CreateKeyPair" {
		t.Errorf("unsupported %v", u)
	}
}

func TestCredentials(t *testing.T) {
	t.Parallel()
	s := awsfake.New(t)
	s.Refuse("AKIABAD")
	tests := []struct {
		key, action string
		wantStatus  int
		want        string
	}{
		{"AKIAGOOD", "DescribeInstances", http.StatusOK, "reservationSet"},
		{"AKIABAD", "DescribeInstances", http.StatusUnauthorized, "AuthFailure"},
		{"AKIABAD", "GetCallerIdentity", http.StatusForbidden, "InvalidClientTokenId"},
	}
	for _, tt := range tests {
		status, body := call(t, s, tt.key, url.Values{"Action": {tt.action}})
		if status != tt.wantStatus || !strings.Contains(body, tt.want) {
			t.Errorf("%s %s: %d %s", tt.key, tt.action, status, body)
		}
	}
	// Once keys are registered, others are unknown, and signatures are checked.
	s.Allow("AKIAGOOD", "secret")
	for _, key := range []string{"AKIAOTHER", "AKIAGOOD"} {
		if status, body := call(t, s, key, url.Values{"Action": {"DescribeInstances"}}); status == http.StatusOK {
			t.Errorf("%s with a bad signature accepted: %s", key, body)
		}
	}
}

// TestSecurityGroup: a group's rules, an instance in it, and EC2's refusal
// to delete a group an instance still uses.
func TestSecurityGroup(t *testing.T) {
	t.Parallel()
	s := awsfake.New(t)
	status, body := call(t, s, "AKIA1", url.Values{"Action": {"CreateSecurityGroup"}, "GroupName": {"web"}, "GroupDescription": {"web servers"},
		"TagSpecification.1.ResourceType": {"security-group"}, "TagSpecification.1.Tag.1.Key": {"managed-by"}, "TagSpecification.1.Tag.1.Value": {"shardform"}})
	groups := s.SecurityGroups()
	if status != http.StatusOK || len(groups) != 1 || !strings.Contains(body, "<groupId>"+groups[0].ID+"</groupId>") {
		t.Fatalf("CreateSecurityGroup: %d %s; groups %+v", status, body, groups)
	}
	sg := groups[0]
	if sg.Tags["managed-by"] != "shardform" || sg.VpcID == "" || len(sg.Rules) != 1 || !sg.Rules[0].Egress || sg.Rules[0].Protocol != "-1" {
		t.Fatalf("new group %+v: want its tags and EC2's default egress rule", sg)
	}
	ssh := url.Values{"Action": {"AuthorizeSecurityGroupIngress"}, "GroupId": {sg.ID}, "IpPermissions.1.IpProtocol": {"tcp"},
		"IpPermissions.1.FromPort": {"22"}, "IpPermissions.1.ToPort": {"22"}, "IpPermissions.1.IpRanges.1.CidrIp": {"0.0.0.0/0"},
		"IpPermissions.1.Ipv6Ranges.1.CidrIpv6": {"::/0"}, "IpPermissions.1.Ipv6Ranges.1.Description": {"ssh"}}
	tests := []struct {
		form       url.Values
		wantStatus int
		want       string
	}{
		{url.Values{"Action": {"CreateSecurityGroup"}, "GroupName": {"web"}, "GroupDescription": {"again"}}, http.StatusBadRequest, "InvalidGroup.Duplicate"},
		{ssh, http.StatusOK, "<securityGroupRuleId>sgr-"},
		{ssh, http.StatusBadRequest, "InvalidPermission.Duplicate"},
		{url.Values{"Action": {"RevokeSecurityGroupEgress"}, "GroupId": {sg.ID}, "IpPermissions.1.IpProtocol": {"-1"},
			"IpPermissions.1.FromPort": {"0"}, "IpPermissions.1.ToPort": {"0"}, "IpPermissions.1.IpRanges.1.CidrIp": {"0.0.0.0/0"}}, http.StatusOK, "<return>true</return>"},
		{url.Values{"Action": {"DescribeSecurityGroups"}, "GroupId.1": {sg.ID}}, http.StatusOK,
			"<ipPermissions><item><ipProtocol>tcp</ipProtocol><fromPort>22</fromPort><toPort>22</toPort><groups></groups><ipRanges><item><cidrIp>0.0.0.0/0</cidrIp></item></ipRanges><ipv6Ranges><item><cidrIpv6>::/0</cidrIpv6><description>ssh</description></item></ipv6Ranges><prefixListIds></prefixListIds></item></ipPermissions><ipPermissionsEgress></ipPermissionsEgress>"},
		{url.Values{"Action": {"RevokeSecurityGroupEgress"}, "GroupId": {sg.ID}, "IpPermissions.1.IpProtocol": {"-1"},
			"IpPermissions.1.FromPort": {"0"}, "IpPermissions.1.ToPort": {"0"}, "IpPermissions.1.Ipv6Ranges.1.CidrIpv6": {"::/0"}}, http.StatusBadRequest, "InvalidPermission.NotFound"},
		{url.Values{"Action": {"DescribeSecurityGroupRules"}, "Filter.1.Name": {"group-id"}, "Filter.1.Value.1": {sg.ID}}, http.StatusOK,
			"<isEgress>false</isEgress><ipProtocol>tcp</ipProtocol><fromPort>22</fromPort><toPort>22</toPort><cidrIpv6>::/0</cidrIpv6><description>ssh</description>"},
		{url.Values{"Action": {"DescribeSecurityGroups"}, "GroupId.1": {"sg-0000000000000dead"}}, http.StatusBadRequest, "InvalidGroup.NotFound"},
		{url.Values{"Action": {"RunInstances"}, "ImageId": {"ami-0de12a4d64000000a"}, "InstanceType": {"t3.small"}, "SecurityGroupId.1": {"sg-0000000000000dead"}}, http.StatusBadRequest, "InvalidGroup.NotFound"},
		{url.Values{"Action": {"RunInstances"}, "ImageId": {"ami-0de12a4d64000000a"}, "InstanceType": {"t3.small"}, "SecurityGroupId.1": {sg.ID}}, http.StatusOK, "<groupName>web</groupName>"},
	}
	for _, tt := range tests {
		status, body := call(t, s, "AKIA1", tt.form)
		if status != tt.wantStatus || !strings.Contains(body, tt.want) {
			t.Errorf("%s: %d %s; want %d with %s", tt.form.Get("Action"), status, body, tt.wantStatus, tt.want)
		}
	}
	sg = s.SecurityGroups()[0]
	if !sg.Allows("tcp", 22, "::/0") || sg.Allows("tcp", 23, "::/0") || sg.Allows("udp", 22, "0.0.0.0/0") || len(sg.Rules) != 2 {
		t.Errorf("rules %+v: want ssh from 0.0.0.0/0 and ::/0 alone", sg.Rules)
	}
	live := s.Live()
	if len(live) != 1 || len(live[0].SecurityGroupIDs) != 1 || live[0].SecurityGroupIDs[0] != sg.ID {
		t.Fatalf("instance %+v not in the group", live)
	}
	id := live[0].ID
	steps := []struct {
		form       url.Values
		wantStatus int
		want       string
	}{
		{url.Values{"Action": {"DescribeNetworkInterfaces"}, "Filter.1.Name": {"group-id"}, "Filter.1.Value.1": {sg.ID}}, http.StatusOK, "<instanceId>" + id + "</instanceId>"},
		{url.Values{"Action": {"DeleteSecurityGroup"}, "GroupId": {sg.ID}}, http.StatusBadRequest, "DependencyViolation"},
		{url.Values{"Action": {"TerminateInstances"}, "InstanceId.1": {id}}, http.StatusOK, "<name>shutting-down</name>"},
		// Shutting down, the instance still holds its network interface.
		{url.Values{"Action": {"DeleteSecurityGroup"}, "GroupId": {sg.ID}}, http.StatusBadRequest, "DependencyViolation"},
		{url.Values{"Action": {"DescribeInstances"}, "InstanceId.1": {id}}, http.StatusOK, "<name>terminated</name>"},
		{url.Values{"Action": {"DescribeNetworkInterfaces"}, "Filter.1.Name": {"group-id"}, "Filter.1.Value.1": {sg.ID}}, http.StatusOK, "<networkInterfaceSet></networkInterfaceSet>"},
		{url.Values{"Action": {"DeleteSecurityGroup"}, "GroupId": {sg.ID}}, http.StatusOK, "<return>true</return>"},
		{url.Values{"Action": {"DeleteSecurityGroup"}, "GroupId": {sg.ID}}, http.StatusBadRequest, "InvalidGroup.NotFound"},
	}
	for _, tt := range steps {
		status, body := call(t, s, "AKIA1", tt.form)
		if status != tt.wantStatus || !strings.Contains(body, tt.want) {
			t.Errorf("%s: %d %s; want %d with %s", tt.form.Get("Action"), status, body, tt.wantStatus, tt.want)
		}
	}
	if groups := s.SecurityGroups(); len(groups) != 0 {
		t.Errorf("groups after delete: %+v", groups)
	}
}
