package awsfake

import (
	"encoding/xml"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// SecurityGroup is what the fake knows of one security group it created.
// The VPC's default group (the one an instance launched without groups is
// in) is implicit: it is never listed and cannot be deleted.
type SecurityGroup struct {
	ID          string
	Name        string
	Description string
	VpcID       string
	Region      string
	Tags        map[string]string
	Rules       []Rule
}

// Rule is one security group rule: one protocol and port range with one
// CIDR, as EC2 keeps them (DescribeSecurityGroupRules); DescribeSecurityGroups
// shows the rules of one protocol and port range as one IpPermission.
type Rule struct {
	ID          string
	Egress      bool
	Protocol    string // tcp, udp, icmp, -1 (all), or a protocol number (58: ICMPv6)
	FromPort    int    // the ICMP type for ICMP; -1 with protocol -1
	ToPort      int    // the ICMP code for ICMP; -1 with protocol -1
	CIDR        string // IPv4 or IPv6
	Description string
}

// IPv6 says whether the rule's range is an IPv6 one.
func (r Rule) IPv6() bool { return strings.Contains(r.CIDR, ":") }

// Allows says whether the group has an ingress rule letting protocol in on
// port (for ICMP: the ICMP type, any code) from cidr (exactly that CIDR:
// the fake does not compute coverage).
func (g SecurityGroup) Allows(protocol string, port int, cidr string) bool {
	protocol = sameProtocol(normalizeProtocol(protocol))
	return slices.ContainsFunc(g.Rules, func(r Rule) bool {
		if r.Egress || r.CIDR != cidr {
			return false
		}
		switch {
		case r.Protocol == "-1":
			return true
		case sameProtocol(r.Protocol) != protocol:
			return false
		case protocol == "icmp" || protocol == "58":
			return r.FromPort == -1 || r.FromPort == port // from: the ICMP type
		}
		return r.FromPort <= port && port <= r.ToPort
	})
}

// SecurityGroups returns a copy of every security group that exists (the
// deleted ones are gone), in creation order.
func (s *Server) SecurityGroups() []SecurityGroup {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]SecurityGroup, 0, len(s.groups))
	for _, g := range s.groups {
		c := *g
		c.Tags = maps.Clone(g.Tags)
		c.Rules = slices.Clone(g.Rules)
		out = append(out, c)
	}
	return out
}

func (s *Server) findGroup(id string) *SecurityGroup {
	for _, g := range s.groups {
		if g.ID == id {
			return g
		}
	}
	return nil
}

func groupNotFound(id string) *apiError {
	return &apiError{http.StatusBadRequest, "InvalidGroup.NotFound", fmt.Sprintf("The security group '%s' does not exist", id)}
}

// sameProtocol is one spelling for the protocols EC2 takes by name or by
// number alike (for comparing rules, not for answers).
func sameProtocol(p string) string {
	if p == "icmpv6" {
		return "58"
	}
	return p
}

// normalizeProtocol is EC2's spelling of a protocol in its answers: names
// lower-cased, all as -1, TCP, UDP and ICMP by name; ICMPv6 as it was given
// ("icmpv6" or "58": the aws provider writes "icmpv6" to its state and
// would see every other answer as drift).
func normalizeProtocol(p string) string {
	p = strings.ToLower(p)
	switch p {
	case "all", "-1":
		return "-1"
	case "6":
		return "tcp"
	case "17":
		return "udp"
	case "1":
		return "icmp"
	}
	return p
}

// parsePermissions reads IpPermissions.N.* into one rule per CIDR.
func parsePermissions(form url.Values, egress bool) ([]Rule, *apiError) {
	var out []Rule
	for i := 1; form.Has(fmt.Sprintf("IpPermissions.%d.IpProtocol", i)); i++ {
		p := fmt.Sprintf("IpPermissions.%d.", i)
		proto := normalizeProtocol(form.Get(p + "IpProtocol"))
		from, to := -1, -1
		if proto != "-1" {
			var err1, err2 error
			from, err1 = strconv.Atoi(form.Get(p + "FromPort"))
			to, err2 = strconv.Atoi(form.Get(p + "ToPort"))
			if err1 != nil || err2 != nil {
				return nil, &apiError{http.StatusBadRequest, "InvalidParameterValue", fmt.Sprintf("Invalid value for portRange. Must specify both from and to ports with protocol %s.", proto)}
			}
		}
		if form.Has(p+"Groups.1.GroupId") || form.Has(p+"PrefixListIds.1.PrefixListId") {
			return nil, &apiError{http.StatusBadRequest, "InvalidParameterValue", "the fake knows CIDR rules only (no group or prefix list sources)"}
		}
		n := len(out)
		for j := 1; form.Has(fmt.Sprintf("%sIpRanges.%d.CidrIp", p, j)); j++ {
			q := fmt.Sprintf("%sIpRanges.%d.", p, j)
			out = append(out, Rule{Egress: egress, Protocol: proto, FromPort: from, ToPort: to, CIDR: form.Get(q + "CidrIp"), Description: form.Get(q + "Description")})
		}
		for j := 1; form.Has(fmt.Sprintf("%sIpv6Ranges.%d.CidrIpv6", p, j)); j++ {
			q := fmt.Sprintf("%sIpv6Ranges.%d.", p, j)
			out = append(out, Rule{Egress: egress, Protocol: proto, FromPort: from, ToPort: to, CIDR: form.Get(q + "CidrIpv6"), Description: form.Get(q + "Description")})
		}
		if len(out) == n {
			return nil, &apiError{http.StatusBadRequest, "InvalidParameterValue", "the fake needs an IpRanges or Ipv6Ranges source in every permission"}
		}
	}
	if len(out) == 0 {
		return nil, &apiError{http.StatusBadRequest, "MissingParameter", "The request must contain the parameter ipPermissions"}
	}
	return out, nil
}

// sameRule says whether two rules have the same protocol, ports, direction
// and CIDR (the description is not part of a rule's identity).
func sameRule(a, b Rule) bool {
	return a.Egress == b.Egress && a.Protocol == b.Protocol && a.FromPort == b.FromPort && a.ToPort == b.ToPort && a.CIDR == b.CIDR
}

type createSecurityGroupResponse struct {
	XMLName   xml.Name   `xml:"http://ec2.amazonaws.com/doc/2016-11-15/ CreateSecurityGroupResponse"`
	RequestID string     `xml:"requestId"`
	Return    bool       `xml:"return"`
	GroupID   string     `xml:"groupId"`
	TagSet    *item[tag] `xml:"tagSet"`
}

// createSecurityGroup creates a group in the default VPC (the only one the
// fake knows) with EC2's default egress rule (all traffic to 0.0.0.0/0).
func (s *Server) createSecurityGroup(req request) (any, *apiError) {
	form := req.form
	name, desc := form.Get("GroupName"), form.Get("GroupDescription")
	if name == "" || desc == "" {
		return nil, &apiError{http.StatusBadRequest, "MissingParameter", "The request must contain the parameters GroupName and GroupDescription"}
	}
	if strings.HasPrefix(strings.ToLower(name), "sg-") {
		return nil, &apiError{http.StatusBadRequest, "InvalidParameterValue", "Group names may not be in the format sg-*"}
	}
	if vpc := form.Get("VpcId"); vpc != "" && vpc != fakeVPC {
		return nil, &apiError{http.StatusBadRequest, "InvalidVpcID.NotFound", fmt.Sprintf("The vpc ID '%s' does not exist", vpc)}
	}
	for _, g := range s.groups {
		if g.Name == name || name == "default" {
			return nil, &apiError{http.StatusBadRequest, "InvalidGroup.Duplicate", fmt.Sprintf("The security group '%s' already exists for VPC '%s'", name, fakeVPC)}
		}
	}
	g := &SecurityGroup{ID: s.nextID("sg"), Name: name, Description: desc, VpcID: fakeVPC, Region: req.region, Tags: map[string]string{}}
	g.Rules = []Rule{{ID: s.nextID("sgr"), Egress: true, Protocol: "-1", FromPort: -1, ToPort: -1, CIDR: "0.0.0.0/0"}}
	for i := 1; form.Has(fmt.Sprintf("TagSpecification.%d.ResourceType", i)); i++ {
		if form.Get(fmt.Sprintf("TagSpecification.%d.ResourceType", i)) != "security-group" {
			continue
		}
		for j := 1; form.Has(fmt.Sprintf("TagSpecification.%d.Tag.%d.Key", i, j)); j++ {
			g.Tags[form.Get(fmt.Sprintf("TagSpecification.%d.Tag.%d.Key", i, j))] = form.Get(fmt.Sprintf("TagSpecification.%d.Tag.%d.Value", i, j))
		}
	}
	s.groups = append(s.groups, g)
	return createSecurityGroupResponse{RequestID: requestID, Return: true, GroupID: g.ID, TagSet: tagSet(g.Tags)}, nil
}

type xmlIPRange struct {
	CidrIP      string `xml:"cidrIp"`
	Description string `xml:"description,omitempty"`
}

type xmlIPv6Range struct {
	CidrIPv6    string `xml:"cidrIpv6"`
	Description string `xml:"description,omitempty"`
}

type xmlPermission struct {
	IPProtocol    string             `xml:"ipProtocol"`
	FromPort      *int               `xml:"fromPort,omitempty"`
	ToPort        *int               `xml:"toPort,omitempty"`
	Groups        item[struct{}]     `xml:"groups"`
	IPRanges      item[xmlIPRange]   `xml:"ipRanges"`
	IPv6Ranges    item[xmlIPv6Range] `xml:"ipv6Ranges"`
	PrefixListIDs item[struct{}]     `xml:"prefixListIds"`
}

type xmlSecurityGroup struct {
	OwnerID             string              `xml:"ownerId"`
	GroupID             string              `xml:"groupId"`
	GroupName           string              `xml:"groupName"`
	GroupDescription    string              `xml:"groupDescription"`
	VpcID               string              `xml:"vpcId"`
	SecurityGroupArn    string              `xml:"securityGroupArn"`
	IPPermissions       item[xmlPermission] `xml:"ipPermissions"`
	IPPermissionsEgress item[xmlPermission] `xml:"ipPermissionsEgress"`
	TagSet              *item[tag]          `xml:"tagSet"`
}

// permissions groups the rules of one direction by protocol and ports, in
// the order they were added.
func permissions(rules []Rule, egress bool) item[xmlPermission] {
	var out item[xmlPermission]
	index := map[[3]string]int{}
	for _, r := range rules {
		if r.Egress != egress {
			continue
		}
		key := [3]string{r.Protocol, strconv.Itoa(r.FromPort), strconv.Itoa(r.ToPort)}
		i, ok := index[key]
		if !ok {
			p := xmlPermission{IPProtocol: r.Protocol}
			if r.Protocol != "-1" {
				p.FromPort, p.ToPort = ptr(r.FromPort), ptr(r.ToPort)
			}
			i = len(out.Items)
			index[key] = i
			out.Items = append(out.Items, p)
		}
		p := &out.Items[i]
		if r.IPv6() {
			p.IPv6Ranges.Items = append(p.IPv6Ranges.Items, xmlIPv6Range{r.CIDR, r.Description})
		} else {
			p.IPRanges.Items = append(p.IPRanges.Items, xmlIPRange{r.CIDR, r.Description})
		}
	}
	return out
}

func (g *SecurityGroup) xml() xmlSecurityGroup {
	return xmlSecurityGroup{
		OwnerID: AccountID, GroupID: g.ID, GroupName: g.Name, GroupDescription: g.Description, VpcID: g.VpcID,
		SecurityGroupArn: "arn:aws:ec2:" + g.Region + ":" + AccountID + ":security-group/" + g.ID,
		IPPermissions:    permissions(g.Rules, false), IPPermissionsEgress: permissions(g.Rules, true), TagSet: tagSet(g.Tags),
	}
}

type describeSecurityGroupsResponse struct {
	XMLName           xml.Name               `xml:"http://ec2.amazonaws.com/doc/2016-11-15/ DescribeSecurityGroupsResponse"`
	RequestID         string                 `xml:"requestId"`
	SecurityGroupInfo item[xmlSecurityGroup] `xml:"securityGroupInfo"`
}

func (s *Server) describeSecurityGroups(req request) (any, *apiError) {
	form := req.form
	ids := indexed(form, "GroupId")
	names := indexed(form, "GroupName")
	f := filters(form)
	for _, id := range ids {
		if s.findGroup(id) == nil {
			return nil, groupNotFound(id)
		}
	}
	resp := describeSecurityGroupsResponse{RequestID: requestID}
	for _, g := range s.groups {
		switch {
		case len(ids) > 0 && !contains(ids, g.ID),
			len(names) > 0 && !contains(names, g.Name),
			f["group-id"] != nil && !anyGlob(f["group-id"], g.ID),
			f["group-name"] != nil && !anyGlob(f["group-name"], g.Name),
			f["vpc-id"] != nil && !anyGlob(f["vpc-id"], g.VpcID),
			!matchTagFilters(f, g.Tags):
			continue
		}
		resp.SecurityGroupInfo.Items = append(resp.SecurityGroupInfo.Items, g.xml())
	}
	return resp, nil
}

// matchTagFilters applies the tag:KEY filters.
func matchTagFilters(f map[string][]string, tags map[string]string) bool {
	for name, values := range f {
		if key, ok := strings.CutPrefix(name, "tag:"); ok {
			v, has := tags[key]
			if !has || !anyGlob(values, v) {
				return false
			}
		}
	}
	return true
}

type xmlRule struct {
	SecurityGroupRuleID  string     `xml:"securityGroupRuleId"`
	GroupID              string     `xml:"groupId"`
	GroupOwnerID         string     `xml:"groupOwnerId"`
	IsEgress             bool       `xml:"isEgress"`
	IPProtocol           string     `xml:"ipProtocol"`
	FromPort             int        `xml:"fromPort"`
	ToPort               int        `xml:"toPort"`
	CidrIPv4             string     `xml:"cidrIpv4,omitempty"`
	CidrIPv6             string     `xml:"cidrIpv6,omitempty"`
	Description          string     `xml:"description,omitempty"`
	SecurityGroupRuleArn string     `xml:"securityGroupRuleArn"`
	TagSet               *item[tag] `xml:"tagSet"`
}

func (g *SecurityGroup) ruleXML(r Rule) xmlRule {
	x := xmlRule{SecurityGroupRuleID: r.ID, GroupID: g.ID, GroupOwnerID: AccountID, IsEgress: r.Egress, IPProtocol: r.Protocol,
		FromPort: r.FromPort, ToPort: r.ToPort, Description: r.Description, TagSet: &item[tag]{},
		SecurityGroupRuleArn: "arn:aws:ec2:" + g.Region + ":" + AccountID + ":security-group-rule/" + r.ID}
	if r.IPv6() {
		x.CidrIPv6 = r.CIDR
	} else {
		x.CidrIPv4 = r.CIDR
	}
	return x
}

type authorizeResponse struct {
	XMLName   xml.Name
	RequestID string        `xml:"requestId"`
	Return    bool          `xml:"return"`
	Rules     item[xmlRule] `xml:"securityGroupRuleSet"`
}

// authorize adds rules: AuthorizeSecurityGroupIngress and
// AuthorizeSecurityGroupEgress. A rule the group already has fails the
// whole call (InvalidPermission.Duplicate), as on EC2.
func (s *Server) authorize(req request, egress bool) (any, *apiError) {
	g := s.findGroup(req.form.Get("GroupId"))
	if g == nil {
		return nil, groupNotFound(req.form.Get("GroupId"))
	}
	rules, aerr := parsePermissions(req.form, egress)
	if aerr != nil {
		return nil, aerr
	}
	for i, r := range rules {
		if slices.ContainsFunc(g.Rules, func(o Rule) bool { return sameRule(o, r) }) || slices.ContainsFunc(rules[:i], func(o Rule) bool { return sameRule(o, r) }) {
			return nil, &apiError{http.StatusBadRequest, "InvalidPermission.Duplicate", fmt.Sprintf("the specified rule \"peer: %s, %s, ALLOW\" already exists", r.CIDR, strings.ToUpper(r.Protocol))}
		}
	}
	action := "AuthorizeSecurityGroupIngressResponse"
	if egress {
		action = "AuthorizeSecurityGroupEgressResponse"
	}
	resp := authorizeResponse{XMLName: xml.Name{Space: EC2Namespace, Local: action}, RequestID: requestID, Return: true}
	for _, r := range rules {
		r.ID = s.nextID("sgr")
		g.Rules = append(g.Rules, r)
		resp.Rules.Items = append(resp.Rules.Items, g.ruleXML(r))
	}
	return resp, nil
}

// revoke removes rules, named by permission (IpPermissions) or by id
// (SecurityGroupRuleId.N). A rule the group lacks fails the whole call.
func (s *Server) revoke(req request, egress bool) (any, *apiError) {
	g := s.findGroup(req.form.Get("GroupId"))
	if g == nil {
		return nil, groupNotFound(req.form.Get("GroupId"))
	}
	keep := slices.Clone(g.Rules)
	if ids := indexed(req.form, "SecurityGroupRuleId"); len(ids) > 0 {
		for _, id := range ids {
			i := slices.IndexFunc(keep, func(o Rule) bool { return o.ID == id && o.Egress == egress })
			if i < 0 {
				return nil, &apiError{http.StatusBadRequest, "InvalidSecurityGroupRuleId.NotFound", fmt.Sprintf("The security group rule ID '%s' does not exist", id)}
			}
			keep = slices.Delete(keep, i, i+1)
		}
	} else {
		rules, aerr := parsePermissions(req.form, egress)
		if aerr != nil {
			return nil, aerr
		}
		for _, r := range rules {
			i := slices.IndexFunc(keep, func(o Rule) bool { return sameRule(o, r) })
			if i < 0 {
				return nil, &apiError{http.StatusBadRequest, "InvalidPermission.NotFound", "The specified rule does not exist in this security group."}
			}
			keep = slices.Delete(keep, i, i+1)
		}
	}
	g.Rules = keep
	action := "RevokeSecurityGroupIngressResponse"
	if egress {
		action = "RevokeSecurityGroupEgressResponse"
	}
	return returnResponse{XMLName: xml.Name{Space: EC2Namespace, Local: action}, RequestID: requestID, Return: true}, nil
}

type describeSecurityGroupRulesResponse struct {
	XMLName   xml.Name      `xml:"http://ec2.amazonaws.com/doc/2016-11-15/ DescribeSecurityGroupRulesResponse"`
	RequestID string        `xml:"requestId"`
	Rules     item[xmlRule] `xml:"securityGroupRuleSet"`
}

func (s *Server) describeSecurityGroupRules(req request) (any, *apiError) {
	ids := indexed(req.form, "SecurityGroupRuleId")
	f := filters(req.form)
	resp := describeSecurityGroupRulesResponse{RequestID: requestID}
	for _, g := range s.groups {
		if v := f["group-id"]; v != nil && !contains(v, g.ID) {
			continue
		}
		for _, r := range g.Rules {
			if len(ids) > 0 && !contains(ids, r.ID) || f["security-group-rule-id"] != nil && !contains(f["security-group-rule-id"], r.ID) {
				continue
			}
			resp.Rules.Items = append(resp.Rules.Items, g.ruleXML(r))
		}
	}
	return resp, nil
}

// deleteSecurityGroup refuses, as EC2 does, while an instance that is not
// terminated (a shutting-down one still has its network interface) is in
// the group.
func (s *Server) deleteSecurityGroup(req request) (any, *apiError) {
	id := req.form.Get("GroupId")
	i := slices.IndexFunc(s.groups, func(g *SecurityGroup) bool { return g.ID == id })
	if i < 0 {
		return nil, groupNotFound(id)
	}
	for _, in := range s.instances {
		if in.State != StateTerminated && contains(in.SecurityGroupIDs, id) {
			return nil, &apiError{http.StatusBadRequest, "DependencyViolation", fmt.Sprintf("resource %s has a dependent object", id)}
		}
	}
	s.groups = slices.Delete(s.groups, i, i+1)
	return returnResponse{XMLName: xml.Name{Space: EC2Namespace, Local: "DeleteSecurityGroupResponse"}, RequestID: requestID, Return: true}, nil
}

type xmlNetworkInterface struct {
	NetworkInterfaceID    string             `xml:"networkInterfaceId"`
	SubnetID              string             `xml:"subnetId"`
	VpcID                 string             `xml:"vpcId"`
	AvailabilityZone      string             `xml:"availabilityZone"`
	Description           string             `xml:"description"`
	OwnerID               string             `xml:"ownerId"`
	RequesterManaged      bool               `xml:"requesterManaged"`
	Status                string             `xml:"status"`
	MacAddress            string             `xml:"macAddress"`
	PrivateIPAddress      string             `xml:"privateIpAddress"`
	SourceDestCheck       bool               `xml:"sourceDestCheck"`
	GroupSet              item[xmlGroup]     `xml:"groupSet"`
	Attachment            xmlNICAttachment   `xml:"attachment"`
	PrivateIPAddressesSet item[xmlPrivateIP] `xml:"privateIpAddressesSet"`
	InterfaceType         string             `xml:"interfaceType"`
	TagSet                *item[tag]         `xml:"tagSet"`
}

type xmlNICAttachment struct {
	AttachmentID        string `xml:"attachmentId"`
	InstanceID          string `xml:"instanceId"`
	InstanceOwnerID     string `xml:"instanceOwnerId"`
	DeviceIndex         int    `xml:"deviceIndex"`
	Status              string `xml:"status"`
	DeleteOnTermination bool   `xml:"deleteOnTermination"`
}

type describeNetworkInterfacesResponse struct {
	XMLName             xml.Name                  `xml:"http://ec2.amazonaws.com/doc/2016-11-15/ DescribeNetworkInterfacesResponse"`
	RequestID           string                    `xml:"requestId"`
	NetworkInterfaceSet item[xmlNetworkInterface] `xml:"networkInterfaceSet"`
}

// describeNetworkInterfaces lists the primary network interface of every
// instance that is not terminated (the fake knows no other). The provider
// asks for the interfaces still using a security group before deleting it.
func (s *Server) describeNetworkInterfaces(req request) (any, *apiError) {
	ids := indexed(req.form, "NetworkInterfaceId")
	f := filters(req.form)
	resp := describeNetworkInterfacesResponse{RequestID: requestID}
	for _, in := range s.instances {
		if in.State == StateTerminated {
			continue
		}
		eni := "eni-" + strings.TrimPrefix(in.ID, "i-")
		groups := in.groupSet()
		var groupIDs []string
		for _, g := range groups.Items {
			groupIDs = append(groupIDs, g.GroupID)
		}
		switch {
		case len(ids) > 0 && !contains(ids, eni),
			f["network-interface-id"] != nil && !contains(f["network-interface-id"], eni),
			f["attachment.instance-id"] != nil && !contains(f["attachment.instance-id"], in.ID),
			f["group-id"] != nil && !slices.ContainsFunc(f["group-id"], func(id string) bool { return contains(groupIDs, id) }),
			f["vpc-id"] != nil && !contains(f["vpc-id"], fakeVPC),
			f["description"] != nil && !anyGlob(f["description"], ""),
			f["requester-id"] != nil,
			f["interface-type"] != nil && !contains(f["interface-type"], "interface"):
			continue
		}
		resp.NetworkInterfaceSet.Items = append(resp.NetworkInterfaceSet.Items, xmlNetworkInterface{
			NetworkInterfaceID: eni, SubnetID: fakeSubnet, VpcID: fakeVPC, AvailabilityZone: in.Region + "a", OwnerID: AccountID,
			Status: "in-use", MacAddress: "0e:00:00:00:00:01", PrivateIPAddress: in.PrivateIP, SourceDestCheck: true, GroupSet: groups,
			Attachment: xmlNICAttachment{AttachmentID: "eni-attach-" + strings.TrimPrefix(in.ID, "i-"), InstanceID: in.ID, InstanceOwnerID: AccountID,
				Status: "attached", DeleteOnTermination: true},
			PrivateIPAddressesSet: item[xmlPrivateIP]{Items: []xmlPrivateIP{{PrivateIPAddress: in.PrivateIP, Primary: true}}},
			InterfaceType:         "interface", TagSet: &item[tag]{},
		})
	}
	return resp, nil
}
