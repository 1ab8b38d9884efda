package awsfake

import (
	"encoding/xml"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// ec2Handler answers one EC2 action; the caller holds s.mu.
type ec2Handler func(s *Server, req request) (any, *apiError)

// request is one call's parameters and the region it was signed for.
type request struct {
	form   url.Values
	region string
}

// ec2Action returns the handler of every EC2 action the fake implements.
func ec2Action(action string) (ec2Handler, bool) {
	switch action {
	case "DescribeImages":
		return (*Server).describeImages, true
	case "RunInstances":
		return (*Server).runInstances, true
	case "DescribeInstances":
		return (*Server).describeInstances, true
	case "DescribeInstanceAttribute":
		return (*Server).describeInstanceAttribute, true
	case "DescribeVolumes":
		return (*Server).describeVolumes, true
	case "DescribeInstanceCreditSpecifications":
		return (*Server).describeInstanceCreditSpecifications, true
	case "DescribeInstanceTypes":
		return (*Server).describeInstanceTypes, true
	case "TerminateInstances":
		return (*Server).terminateInstances, true
	case "DescribeTags":
		return (*Server).describeTags, true
	case "DescribeVpcs":
		return (*Server).describeVpcs, true
	case "ModifyInstanceAttribute":
		return (*Server).modifyInstanceAttribute, true
	case "GetInstanceUefiData":
		return (*Server).getInstanceUefiData, true
	case "CreateSecurityGroup":
		return (*Server).createSecurityGroup, true
	case "DescribeSecurityGroups":
		return (*Server).describeSecurityGroups, true
	case "DescribeSecurityGroupRules":
		return (*Server).describeSecurityGroupRules, true
	case "AuthorizeSecurityGroupIngress":
		return func(s *Server, req request) (any, *apiError) { return s.authorize(req, false) }, true
	case "AuthorizeSecurityGroupEgress":
		return func(s *Server, req request) (any, *apiError) { return s.authorize(req, true) }, true
	case "RevokeSecurityGroupIngress":
		return func(s *Server, req request) (any, *apiError) { return s.revoke(req, false) }, true
	case "RevokeSecurityGroupEgress":
		return func(s *Server, req request) (any, *apiError) { return s.revoke(req, true) }, true
	case "DeleteSecurityGroup":
		return (*Server).deleteSecurityGroup, true
	case "DescribeNetworkInterfaces":
		return (*Server).describeNetworkInterfaces, true
	case "StartInstances": // power.go
		return (*Server).startInstances, true
	case "StopInstances":
		return (*Server).stopInstances, true
	case "RebootInstances":
		return (*Server).rebootInstances, true
	}
	return nil, false
}

type item[T any] struct {
	Items []T `xml:"item"`
}

type tag struct {
	Key   string `xml:"key"`
	Value string `xml:"value"`
}

func tagSet(m map[string]string) *item[tag] {
	s := &item[tag]{}
	for k, v := range m {
		s.Items = append(s.Items, tag{k, v})
	}
	return s
}

// Images the fake offers: an official-looking Debian 12 image per
// architecture. Any other ami-... id is answered with a generic image.
type image struct {
	ID           string
	Name         string
	Architecture string
}

func debianImages() []image {
	return []image{
		{"ami-0de12a4d64000000a", "debian-12-amd64-20260101-2000", "x86_64"},
		{"ami-0de12a4d64000000b", "debian-12-arm64-20260101-2000", "arm64"},
	}
}

const debianOwner = "136693071363"

type xmlImage struct {
	ImageID            string          `xml:"imageId"`
	ImageLocation      string          `xml:"imageLocation"`
	ImageState         string          `xml:"imageState"`
	ImageOwnerID       string          `xml:"imageOwnerId"`
	CreationDate       string          `xml:"creationDate"`
	IsPublic           bool            `xml:"isPublic"`
	Architecture       string          `xml:"architecture"`
	ImageType          string          `xml:"imageType"`
	Name               string          `xml:"name"`
	Description        string          `xml:"description"`
	RootDeviceType     string          `xml:"rootDeviceType"`
	RootDeviceName     string          `xml:"rootDeviceName"`
	BlockDeviceMapping item[xmlBDM]    `xml:"blockDeviceMapping"`
	VirtualizationType string          `xml:"virtualizationType"`
	Hypervisor         string          `xml:"hypervisor"`
	EnaSupport         bool            `xml:"enaSupport"`
	SriovNetSupport    string          `xml:"sriovNetSupport"`
	PlatformDetails    string          `xml:"platformDetails"`
	UsageOperation     string          `xml:"usageOperation"`
	BootMode           string          `xml:"bootMode,omitempty"`
	ImdsSupport        string          `xml:"imdsSupport,omitempty"`
	TagSet             *item[tag]      `xml:"tagSet"`
	ProductCodes       *item[struct{}] `xml:"productCodes"`
}

type xmlBDM struct {
	DeviceName string  `xml:"deviceName"`
	Ebs        *xmlEBS `xml:"ebs"`
}

type xmlEBS struct {
	SnapshotID          string `xml:"snapshotId,omitempty"`
	VolumeID            string `xml:"volumeId,omitempty"`
	VolumeSize          int    `xml:"volumeSize,omitempty"`
	Status              string `xml:"status,omitempty"`
	AttachTime          string `xml:"attachTime,omitempty"`
	DeleteOnTermination bool   `xml:"deleteOnTermination"`
	VolumeType          string `xml:"volumeType,omitempty"`
	Encrypted           *bool  `xml:"encrypted,omitempty"`
}

func (im image) xml() xmlImage {
	owner := debianOwner
	return xmlImage{
		ImageID: im.ID, ImageLocation: owner + "/" + im.Name, ImageState: "available", ImageOwnerID: owner,
		CreationDate: "2026-01-01T20:00:00.000Z", IsPublic: true, Architecture: im.Architecture, ImageType: "machine",
		Name: im.Name, Description: "Debian 12 (fake)", RootDeviceType: "ebs", RootDeviceName: "/dev/xvda",
		BlockDeviceMapping: item[xmlBDM]{Items: []xmlBDM{{DeviceName: "/dev/xvda", Ebs: &xmlEBS{
			SnapshotID: "snap-0de12a4d640000000", VolumeSize: 8, DeleteOnTermination: true, VolumeType: "gp2", Encrypted: ptr(false),
		}}}},
		VirtualizationType: "hvm", Hypervisor: "xen", EnaSupport: true, SriovNetSupport: "simple",
		PlatformDetails: "Linux/UNIX", UsageOperation: "RunInstances", BootMode: "uefi-preferred", ImdsSupport: "v2.0",
		TagSet: &item[tag]{}, ProductCodes: &item[struct{}]{},
	}
}

func ptr[T any](v T) *T { return &v }

type describeImagesResponse struct {
	XMLName   xml.Name       `xml:"http://ec2.amazonaws.com/doc/2016-11-15/ DescribeImagesResponse"`
	RequestID string         `xml:"requestId"`
	ImagesSet item[xmlImage] `xml:"imagesSet"`
}

func (s *Server) describeImages(req request) (any, *apiError) {
	form := req.form
	ids := indexed(form, "ImageId")
	owners := indexed(form, "Owner")
	f := filters(form)
	resp := describeImagesResponse{RequestID: requestID}
	known := map[string]bool{}
	for _, im := range debianImages() {
		known[im.ID] = true
		switch {
		case len(ids) > 0 && !contains(ids, im.ID):
			continue
		case len(owners) > 0 && !contains(owners, debianOwner) && !contains(owners, "amazon"):
			continue
		case f["name"] != nil && !anyGlob(f["name"], im.Name):
			continue
		case f["architecture"] != nil && !anyGlob(f["architecture"], im.Architecture):
			continue
		case f["image-id"] != nil && !anyGlob(f["image-id"], im.ID):
			continue
		}
		resp.ImagesSet.Items = append(resp.ImagesSet.Items, im.xml())
	}
	for _, id := range ids {
		if !known[id] {
			resp.ImagesSet.Items = append(resp.ImagesSet.Items, image{id, "custom-" + id, "x86_64"}.xml())
		}
	}
	return resp, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// xmlInstance is an instance as DescribeInstances and RunInstances show it.
type xmlInstance struct {
	InstanceID                       string           `xml:"instanceId"`
	ImageID                          string           `xml:"imageId"`
	InstanceState                    xmlState         `xml:"instanceState"`
	PrivateDNSName                   string           `xml:"privateDnsName"`
	DNSName                          string           `xml:"dnsName"`
	Reason                           string           `xml:"reason"`
	AmiLaunchIndex                   int              `xml:"amiLaunchIndex"`
	ProductCodes                     *item[struct{}]  `xml:"productCodes"`
	InstanceType                     string           `xml:"instanceType"`
	LaunchTime                       string           `xml:"launchTime"`
	Placement                        xmlPlacement     `xml:"placement"`
	Monitoring                       string           `xml:"monitoring>state"`
	SubnetID                         string           `xml:"subnetId"`
	VpcID                            string           `xml:"vpcId"`
	PrivateIPAddress                 string           `xml:"privateIpAddress"`
	IPAddress                        string           `xml:"ipAddress,omitempty"`
	IPv6Address                      string           `xml:"ipv6Address,omitempty"`
	SourceDestCheck                  bool             `xml:"sourceDestCheck"`
	GroupSet                         item[xmlGroup]   `xml:"groupSet"`
	Architecture                     string           `xml:"architecture"`
	RootDeviceType                   string           `xml:"rootDeviceType"`
	RootDeviceName                   string           `xml:"rootDeviceName"`
	BlockDeviceMapping               item[xmlBDM]     `xml:"blockDeviceMapping"`
	VirtualizationType               string           `xml:"virtualizationType"`
	ClientToken                      string           `xml:"clientToken"`
	TagSet                           *item[tag]       `xml:"tagSet"`
	Hypervisor                       string           `xml:"hypervisor"`
	NetworkInterfaceSet              item[xmlENI]     `xml:"networkInterfaceSet"`
	EbsOptimized                     bool             `xml:"ebsOptimized"`
	EnaSupport                       bool             `xml:"enaSupport"`
	CPUCoreCount                     int              `xml:"cpuOptions>coreCount"`
	CPUThreadsPerCore                int              `xml:"cpuOptions>threadsPerCore"`
	CapacityReservationPreference    string           `xml:"capacityReservationSpecification>capacityReservationPreference"`
	HibernationConfigured            bool             `xml:"hibernationOptions>configured"`
	MetadataOptions                  xmlMetadata      `xml:"metadataOptions"`
	EnclaveEnabled                   bool             `xml:"enclaveOptions>enabled"`
	BootMode                         string           `xml:"bootMode"`
	PlatformDetails                  string           `xml:"platformDetails"`
	UsageOperation                   string           `xml:"usageOperation"`
	UsageOperationUpdateTime         string           `xml:"usageOperationUpdateTime"`
	PrivateDNSNameOptions            xmlPrivateDNSOpt `xml:"privateDnsNameOptions"`
	MaintenanceAutoRecovery          string           `xml:"maintenanceOptions>autoRecovery"`
	CurrentInstanceBootMode          string           `xml:"currentInstanceBootMode"`
	NetworkPerformanceBandwidthWeigh string           `xml:"networkPerformanceOptions>bandwidthWeighting,omitempty"`
}

type xmlState struct {
	Code int    `xml:"code"`
	Name string `xml:"name"`
}

type xmlPlacement struct {
	AvailabilityZone string `xml:"availabilityZone"`
	GroupName        string `xml:"groupName"`
	Tenancy          string `xml:"tenancy"`
}

type xmlGroup struct {
	GroupID   string `xml:"groupId"`
	GroupName string `xml:"groupName"`
}

type xmlMetadata struct {
	State                   string `xml:"state"`
	HTTPTokens              string `xml:"httpTokens"`
	HTTPPutResponseHopLimit int    `xml:"httpPutResponseHopLimit"`
	HTTPEndpoint            string `xml:"httpEndpoint"`
	HTTPProtocolIpv6        string `xml:"httpProtocolIpv6"`
	InstanceMetadataTags    string `xml:"instanceMetadataTags"`
}

type xmlPrivateDNSOpt struct {
	HostnameType                    string `xml:"hostnameType"`
	EnableResourceNameDNSARecord    bool   `xml:"enableResourceNameDnsARecord"`
	EnableResourceNameDNSAAAARecord bool   `xml:"enableResourceNameDnsAAAARecord"`
}

type xmlENI struct {
	NetworkInterfaceID    string             `xml:"networkInterfaceId"`
	SubnetID              string             `xml:"subnetId"`
	VpcID                 string             `xml:"vpcId"`
	Description           string             `xml:"description"`
	OwnerID               string             `xml:"ownerId"`
	Status                string             `xml:"status"`
	MacAddress            string             `xml:"macAddress"`
	PrivateIPAddress      string             `xml:"privateIpAddress"`
	PrivateDNSName        string             `xml:"privateDnsName"`
	SourceDestCheck       bool               `xml:"sourceDestCheck"`
	GroupSet              item[xmlGroup]     `xml:"groupSet"`
	Attachment            xmlENIAttachment   `xml:"attachment"`
	Association           *xmlAssociation    `xml:"association,omitempty"`
	PrivateIPAddressesSet item[xmlPrivateIP] `xml:"privateIpAddressesSet"`
	Ipv6AddressesSet      item[xmlIpv6]      `xml:"ipv6AddressesSet"`
	InterfaceType         string             `xml:"interfaceType"`
}

type xmlENIAttachment struct {
	AttachmentID        string `xml:"attachmentId"`
	DeviceIndex         int    `xml:"deviceIndex"`
	NetworkCardIndex    int    `xml:"networkCardIndex"`
	Status              string `xml:"status"`
	AttachTime          string `xml:"attachTime"`
	DeleteOnTermination bool   `xml:"deleteOnTermination"`
}

type xmlAssociation struct {
	PublicIP      string `xml:"publicIp"`
	PublicDNSName string `xml:"publicDnsName"`
	IPOwnerID     string `xml:"ipOwnerId"`
}

type xmlPrivateIP struct {
	PrivateIPAddress string          `xml:"privateIpAddress"`
	PrivateDNSName   string          `xml:"privateDnsName"`
	Primary          bool            `xml:"primary"`
	Association      *xmlAssociation `xml:"association,omitempty"`
}

type xmlIpv6 struct {
	Ipv6Address string `xml:"ipv6Address"`
}

const (
	fakeVPC    = "vpc-0fa4e000000000001"
	fakeSubnet = "subnet-0fa4e00000000001"
	fakeSG     = "sg-0fa4e000000000001"
)

func (in *Instance) xml() xmlInstance {
	zone := in.Region + "a"
	launch := in.LaunchTime.UTC().Format("2006-01-02T15:04:05.000Z")
	privateDNS := "ip-" + strings.ReplaceAll(in.PrivateIP, ".", "-") + ".ec2.internal"
	arch := "x86_64"
	if in.ImageID == debianImages()[1].ID {
		arch = "arm64"
	}
	x := xmlInstance{
		InstanceID: in.ID, ImageID: in.ImageID, InstanceState: in.state(),
		PrivateDNSName: privateDNS, ProductCodes: &item[struct{}]{}, InstanceType: in.InstanceType, LaunchTime: launch,
		Placement: xmlPlacement{AvailabilityZone: zone, Tenancy: "default"}, Monitoring: "disabled",
		SubnetID: fakeSubnet, VpcID: fakeVPC, PrivateIPAddress: in.PrivateIP, SourceDestCheck: true,
		GroupSet: in.groupSet(), Architecture: arch,
		RootDeviceType: "ebs", RootDeviceName: "/dev/xvda", VirtualizationType: "hvm", ClientToken: in.clientToken,
		TagSet: tagSet(in.Tags), Hypervisor: "xen", EbsOptimized: false, EnaSupport: true,
		CPUCoreCount: 1, CPUThreadsPerCore: 2, CapacityReservationPreference: "open",
		MetadataOptions: xmlMetadata{State: "applied", HTTPTokens: in.HTTPTokens, HTTPPutResponseHopLimit: 2, HTTPEndpoint: "enabled", HTTPProtocolIpv6: "disabled", InstanceMetadataTags: "disabled"},
		BootMode:        "uefi", PlatformDetails: "Linux/UNIX", UsageOperation: "RunInstances", UsageOperationUpdateTime: launch,
		PrivateDNSNameOptions:   xmlPrivateDNSOpt{HostnameType: "ip-name"},
		MaintenanceAutoRecovery: "default", CurrentInstanceBootMode: "uefi",
	}
	if in.State == StateTerminated {
		x.PrivateDNSName, x.SubnetID, x.VpcID, x.PrivateIPAddress = "", "", "", ""
		x.GroupSet = item[xmlGroup]{}
		return x
	}
	x.BlockDeviceMapping = item[xmlBDM]{Items: []xmlBDM{{DeviceName: "/dev/xvda", Ebs: &xmlEBS{
		VolumeID: in.VolumeID, Status: "attached", AttachTime: launch, DeleteOnTermination: true,
	}}}}
	var assoc *xmlAssociation
	if in.PublicIP != "" && in.State == StateRunning {
		x.IPAddress = in.PublicIP
		x.DNSName = "ec2-" + strings.ReplaceAll(in.PublicIP, ".", "-") + ".compute-1.amazonaws.com"
		assoc = &xmlAssociation{PublicIP: in.PublicIP, PublicDNSName: x.DNSName, IPOwnerID: "amazon"}
	}
	x.NetworkInterfaceSet = item[xmlENI]{Items: []xmlENI{{
		NetworkInterfaceID: "eni-" + strings.TrimPrefix(in.ID, "i-"), SubnetID: fakeSubnet, VpcID: fakeVPC, OwnerID: AccountID,
		Status: "in-use", MacAddress: "0e:00:00:00:00:01", PrivateIPAddress: in.PrivateIP, PrivateDNSName: privateDNS,
		SourceDestCheck: true, GroupSet: in.groupSet(),
		Attachment:  xmlENIAttachment{AttachmentID: "eni-attach-" + strings.TrimPrefix(in.ID, "i-"), Status: "attached", AttachTime: launch, DeleteOnTermination: true},
		Association: assoc,
		PrivateIPAddressesSet: item[xmlPrivateIP]{Items: []xmlPrivateIP{{
			PrivateIPAddress: in.PrivateIP, PrivateDNSName: privateDNS, Primary: true, Association: assoc,
		}}},
		InterfaceType: "interface",
	}}}
	if in.IPv6 != "" {
		x.IPv6Address = in.IPv6
		x.NetworkInterfaceSet.Items[0].Ipv6AddressesSet = item[xmlIpv6]{Items: []xmlIpv6{{Ipv6Address: in.IPv6}}}
	}
	return x
}

// groupSet is the instance's security groups: the VPC's default group
// when it was launched in none.
func (in *Instance) groupSet() item[xmlGroup] {
	if len(in.SecurityGroupIDs) == 0 {
		return item[xmlGroup]{Items: []xmlGroup{{fakeSG, "default"}}}
	}
	var set item[xmlGroup]
	for i, id := range in.SecurityGroupIDs {
		set.Items = append(set.Items, xmlGroup{id, in.groupNames[i]})
	}
	return set
}

type reservation struct {
	ReservationID string            `xml:"reservationId"`
	OwnerID       string            `xml:"ownerId"`
	GroupSet      item[xmlGroup]    `xml:"groupSet"`
	InstancesSet  item[xmlInstance] `xml:"instancesSet"`
}

type runInstancesResponse struct {
	XMLName   xml.Name `xml:"http://ec2.amazonaws.com/doc/2016-11-15/ RunInstancesResponse"`
	RequestID string   `xml:"requestId"`
	reservation
}

func (s *Server) runInstances(req request) (any, *apiError) {
	form := req.form
	if form.Get("ImageId") == "" || form.Get("InstanceType") == "" {
		return nil, &apiError{http.StatusBadRequest, "MissingParameter", "The request must contain the parameters ImageId and InstanceType"}
	}
	if n := form.Get("MaxCount"); n != "" && n != "1" {
		return nil, &apiError{http.StatusBadRequest, "InvalidParameterValue", "the fake launches one instance at a time"}
	}
	groupIDs := indexed(form, "SecurityGroupId")
	groupIDs = append(groupIDs, indexed(form, "NetworkInterface.1.SecurityGroupId")...)
	var groupNames []string
	for _, id := range groupIDs {
		g := s.findGroup(id)
		if g == nil {
			return nil, groupNotFound(id)
		}
		groupNames = append(groupNames, g.Name)
	}
	if names := indexed(form, "SecurityGroup"); len(names) > 0 {
		return nil, &apiError{http.StatusBadRequest, "InvalidParameterCombination", "the fake takes security groups by id (SecurityGroupId), not by name"}
	}
	token := form.Get("ClientToken")
	var in *Instance
	for _, old := range s.instances {
		if token != "" && old.clientToken == token {
			in = old // idempotent retry
		}
	}
	if in == nil {
		n := len(s.instances) + 10
		in = &Instance{
			ID: s.nextID("i"), Region: req.region, ImageID: form.Get("ImageId"), InstanceType: form.Get("InstanceType"), State: StatePending,
			PublicIP: fmt.Sprintf("198.51.100.%d", n%250+1), PrivateIP: fmt.Sprintf("172.31.0.%d", n%250+1),
			UserData: form.Get("UserData"), Tags: map[string]string{}, VolumeTags: map[string]string{}, VolumeID: s.nextID("vol"),
			VolumeSize: 8, VolumeType: "gp2", HTTPTokens: "optional", LaunchTime: time.Now().Truncate(time.Second), clientToken: token,
			SecurityGroupIDs: groupIDs, groupNames: groupNames,
		}
		for i := 1; form.Has(fmt.Sprintf("TagSpecification.%d.ResourceType", i)); i++ {
			tags := in.Tags
			switch form.Get(fmt.Sprintf("TagSpecification.%d.ResourceType", i)) {
			case "instance":
			case "volume":
				tags = in.VolumeTags
			default:
				continue
			}
			for j := 1; form.Has(fmt.Sprintf("TagSpecification.%d.Tag.%d.Key", i, j)); j++ {
				tags[form.Get(fmt.Sprintf("TagSpecification.%d.Tag.%d.Key", i, j))] = form.Get(fmt.Sprintf("TagSpecification.%d.Tag.%d.Value", i, j))
			}
		}
		for i := 1; form.Has(fmt.Sprintf("BlockDeviceMapping.%d.DeviceName", i)); i++ {
			p := fmt.Sprintf("BlockDeviceMapping.%d.Ebs.", i)
			if v, err := strconv.Atoi(form.Get(p + "VolumeSize")); err == nil {
				in.VolumeSize = v
			}
			if v := form.Get(p + "VolumeType"); v != "" {
				in.VolumeType = v
			}
			in.Encrypted = form.Get(p+"Encrypted") == "true"
		}
		if v := form.Get("MetadataOptions.HttpTokens"); v != "" {
			in.HTTPTokens = v
		}
		s.instances = append(s.instances, in)
	}
	resp := runInstancesResponse{RequestID: requestID, reservation: reservation{
		ReservationID: "r-" + strings.TrimPrefix(in.ID, "i-"), OwnerID: AccountID,
		InstancesSet: item[xmlInstance]{Items: []xmlInstance{in.xml()}},
	}}
	return resp, nil
}

type describeInstancesResponse struct {
	XMLName        xml.Name          `xml:"http://ec2.amazonaws.com/doc/2016-11-15/ DescribeInstancesResponse"`
	RequestID      string            `xml:"requestId"`
	ReservationSet item[reservation] `xml:"reservationSet"`
}

// advance moves an instance one step through its life: each describe
// after a launch or a terminate finds it one state further.
func (in *Instance) advance() {
	switch in.State {
	case StatePending:
		in.State = StateRunning
	case StateShuttingDown:
		in.State = StateTerminated
	case StateStopping:
		if in.forcedStop || !in.hangOnStop {
			in.State = StateStopped
		}
	}
}

func (s *Server) describeInstances(req request) (any, *apiError) {
	form := req.form
	ids := indexed(form, "InstanceId")
	f := filters(form)
	if v := f["instance-id"]; v != nil {
		ids = append(ids, v...)
	}
	resp := describeInstancesResponse{RequestID: requestID}
	for _, id := range ids {
		if s.find(id) == nil {
			return nil, instanceNotFound(id)
		}
	}
	for _, in := range s.instances {
		if len(ids) > 0 && !contains(ids, in.ID) {
			continue
		}
		if states := f["instance-state-name"]; states != nil && !anyGlob(states, in.State) {
			continue
		}
		in.advance()
		resp.ReservationSet.Items = append(resp.ReservationSet.Items, reservation{
			ReservationID: "r-" + strings.TrimPrefix(in.ID, "i-"), OwnerID: AccountID,
			InstancesSet: item[xmlInstance]{Items: []xmlInstance{in.xml()}},
		})
	}
	return resp, nil
}

type attrValue struct {
	Value string `xml:"value"`
}

type describeInstanceAttributeResponse struct {
	XMLName                           xml.Name   `xml:"http://ec2.amazonaws.com/doc/2016-11-15/ DescribeInstanceAttributeResponse"`
	RequestID                         string     `xml:"requestId"`
	InstanceID                        string     `xml:"instanceId"`
	DisableAPITermination             *attrValue `xml:"disableApiTermination,omitempty"`
	DisableAPIStop                    *attrValue `xml:"disableApiStop,omitempty"`
	InstanceInitiatedShutdownBehavior *attrValue `xml:"instanceInitiatedShutdownBehavior,omitempty"`
	UserData                          *attrValue `xml:"userData,omitempty"`
	SourceDestCheck                   *attrValue `xml:"sourceDestCheck,omitempty"`
}

func (s *Server) describeInstanceAttribute(req request) (any, *apiError) {
	form := req.form
	in := s.find(form.Get("InstanceId"))
	if in == nil {
		return nil, instanceNotFound(form.Get("InstanceId"))
	}
	resp := describeInstanceAttributeResponse{RequestID: requestID, InstanceID: in.ID}
	switch a := form.Get("Attribute"); a {
	case "disableApiTermination":
		resp.DisableAPITermination = &attrValue{"false"}
	case "disableApiStop":
		resp.DisableAPIStop = &attrValue{"false"}
	case "instanceInitiatedShutdownBehavior":
		resp.InstanceInitiatedShutdownBehavior = &attrValue{"stop"}
	case "userData":
		resp.UserData = &attrValue{in.UserData}
	case "sourceDestCheck":
		resp.SourceDestCheck = &attrValue{"true"}
	default:
		return nil, &apiError{http.StatusBadRequest, "InvalidParameterValue", fmt.Sprintf("the fake does not know the instance attribute %q", a)}
	}
	return resp, nil
}

type xmlVolume struct {
	VolumeID           string              `xml:"volumeId"`
	Size               int                 `xml:"size"`
	SnapshotID         string              `xml:"snapshotId"`
	AvailabilityZone   string              `xml:"availabilityZone"`
	Status             string              `xml:"status"`
	CreateTime         string              `xml:"createTime"`
	AttachmentSet      item[xmlAttachment] `xml:"attachmentSet"`
	VolumeType         string              `xml:"volumeType"`
	Iops               int                 `xml:"iops"`
	Throughput         int                 `xml:"throughput,omitempty"`
	Encrypted          bool                `xml:"encrypted"`
	KmsKeyID           string              `xml:"kmsKeyId,omitempty"`
	MultiAttachEnabled bool                `xml:"multiAttachEnabled"`
	TagSet             *item[tag]          `xml:"tagSet"`
}

type xmlAttachment struct {
	VolumeID            string `xml:"volumeId"`
	InstanceID          string `xml:"instanceId"`
	Device              string `xml:"device"`
	Status              string `xml:"status"`
	AttachTime          string `xml:"attachTime"`
	DeleteOnTermination bool   `xml:"deleteOnTermination"`
}

type describeVolumesResponse struct {
	XMLName   xml.Name        `xml:"http://ec2.amazonaws.com/doc/2016-11-15/ DescribeVolumesResponse"`
	RequestID string          `xml:"requestId"`
	VolumeSet item[xmlVolume] `xml:"volumeSet"`
}

func (s *Server) describeVolumes(req request) (any, *apiError) {
	form := req.form
	ids := indexed(form, "VolumeId")
	f := filters(form)
	if v := f["volume-id"]; v != nil {
		ids = append(ids, v...)
	}
	resp := describeVolumesResponse{RequestID: requestID}
	for _, in := range s.instances {
		if in.State == StateTerminated || len(ids) > 0 && !contains(ids, in.VolumeID) {
			continue
		}
		if v := f["attachment.instance-id"]; v != nil && !contains(v, in.ID) {
			continue
		}
		launch := in.LaunchTime.UTC().Format("2006-01-02T15:04:05.000Z")
		vol := xmlVolume{
			VolumeID: in.VolumeID, Size: in.VolumeSize, SnapshotID: "snap-0de12a4d640000000", AvailabilityZone: in.Region + "a",
			Status: "in-use", CreateTime: launch, VolumeType: in.VolumeType, Iops: 3000, Encrypted: in.Encrypted,
			AttachmentSet: item[xmlAttachment]{Items: []xmlAttachment{{in.VolumeID, in.ID, "/dev/xvda", "attached", launch, true}}},
			TagSet:        tagSet(in.VolumeTags),
		}
		if in.VolumeType == "gp3" {
			vol.Throughput = 125
		}
		if in.Encrypted {
			vol.KmsKeyID = "arn:aws:kms:" + in.Region + ":" + AccountID + ":key/00000000-0000-0000-0000-00000000fa4e"
		}
		resp.VolumeSet.Items = append(resp.VolumeSet.Items, vol)
	}
	return resp, nil
}

type creditSpec struct {
	InstanceID string `xml:"instanceId"`
	CPUCredits string `xml:"cpuCredits"`
}

type describeCreditsResponse struct {
	XMLName   xml.Name         `xml:"http://ec2.amazonaws.com/doc/2016-11-15/ DescribeInstanceCreditSpecificationsResponse"`
	RequestID string           `xml:"requestId"`
	Set       item[creditSpec] `xml:"instanceCreditSpecificationSet"`
}

func (s *Server) describeInstanceCreditSpecifications(req request) (any, *apiError) {
	form := req.form
	resp := describeCreditsResponse{RequestID: requestID}
	for _, id := range indexed(form, "InstanceId") {
		in := s.find(id)
		if in == nil {
			return nil, instanceNotFound(id)
		}
		resp.Set.Items = append(resp.Set.Items, creditSpec{in.ID, "unlimited"})
	}
	return resp, nil
}

type xmlInstanceType struct {
	InstanceType                  string   `xml:"instanceType"`
	CurrentGeneration             bool     `xml:"currentGeneration"`
	BurstablePerformanceSupported bool     `xml:"burstablePerformanceSupported"`
	SupportedArchitectures        []string `xml:"processorInfo>supportedArchitectures>item"`
	DefaultVCpus                  int      `xml:"vCpuInfo>defaultVCpus"`
	SizeInMiB                     int      `xml:"memoryInfo>sizeInMiB"`
	Hypervisor                    string   `xml:"hypervisor"`
}

type describeInstanceTypesResponse struct {
	XMLName   xml.Name              `xml:"http://ec2.amazonaws.com/doc/2016-11-15/ DescribeInstanceTypesResponse"`
	RequestID string                `xml:"requestId"`
	Set       item[xmlInstanceType] `xml:"instanceTypeSet"`
}

func (s *Server) describeInstanceTypes(req request) (any, *apiError) {
	form := req.form
	resp := describeInstanceTypesResponse{RequestID: requestID}
	for _, name := range indexed(form, "InstanceType") {
		family, _, _ := strings.Cut(name, ".")
		arch := "x86_64"
		if strings.Contains(family[1:], "g") {
			arch = "arm64"
		}
		resp.Set.Items = append(resp.Set.Items, xmlInstanceType{
			InstanceType: name, CurrentGeneration: true, BurstablePerformanceSupported: strings.HasPrefix(family, "t"),
			SupportedArchitectures: []string{arch}, DefaultVCpus: 2, SizeInMiB: 4096, Hypervisor: "nitro",
		})
	}
	return resp, nil
}

type stateChange struct {
	InstanceID    string   `xml:"instanceId"`
	CurrentState  xmlState `xml:"currentState"`
	PreviousState xmlState `xml:"previousState"`
}

type terminateInstancesResponse struct {
	XMLName      xml.Name          `xml:"http://ec2.amazonaws.com/doc/2016-11-15/ TerminateInstancesResponse"`
	RequestID    string            `xml:"requestId"`
	InstancesSet item[stateChange] `xml:"instancesSet"`
}

func (s *Server) terminateInstances(req request) (any, *apiError) {
	form := req.form
	resp := terminateInstancesResponse{RequestID: requestID}
	for _, id := range indexed(form, "InstanceId") {
		in := s.find(id)
		if in == nil {
			return nil, instanceNotFound(id)
		}
		prev := in.state()
		if in.State != StateTerminated {
			in.State = StateShuttingDown
		}
		resp.InstancesSet.Items = append(resp.InstancesSet.Items, stateChange{in.ID, in.state(), prev})
	}
	return resp, nil
}

type xmlTagDescription struct {
	ResourceID   string `xml:"resourceId"`
	ResourceType string `xml:"resourceType"`
	Key          string `xml:"key"`
	Value        string `xml:"value"`
}

type describeTagsResponse struct {
	XMLName   xml.Name                `xml:"http://ec2.amazonaws.com/doc/2016-11-15/ DescribeTagsResponse"`
	RequestID string                  `xml:"requestId"`
	TagSet    item[xmlTagDescription] `xml:"tagSet"`
}

func (s *Server) describeTags(req request) (any, *apiError) {
	form := req.form
	f := filters(form)
	resp := describeTagsResponse{RequestID: requestID}
	add := func(id, kind string, tags map[string]string) {
		if v := f["resource-id"]; v != nil && !contains(v, id) {
			return
		}
		if v := f["resource-type"]; v != nil && !contains(v, kind) {
			return
		}
		for k, v := range tags {
			if keys := f["key"]; keys != nil && !anyGlob(keys, k) {
				continue
			}
			if values := f["value"]; values != nil && !anyGlob(values, v) {
				continue
			}
			resp.TagSet.Items = append(resp.TagSet.Items, xmlTagDescription{id, kind, k, v})
		}
	}
	for _, in := range s.instances {
		add(in.ID, "instance", in.Tags)
		add(in.VolumeID, "volume", in.VolumeTags)
	}
	for _, g := range s.groups {
		add(g.ID, "security-group", g.Tags)
	}
	return resp, nil
}

// state is the instance's state with EC2's code.
func (in *Instance) state() xmlState {
	codes := map[string]int{StatePending: 0, StateRunning: 16, StateShuttingDown: 32, StateTerminated: 48, StateStopping: 64, StateStopped: 80}
	return xmlState{codes[in.State], in.State}
}

type getInstanceUefiDataResponse struct {
	XMLName    xml.Name `xml:"http://ec2.amazonaws.com/doc/2016-11-15/ GetInstanceUefiDataResponse"`
	RequestID  string   `xml:"requestId"`
	InstanceID string   `xml:"instanceId"`
	UefiData   string   `xml:"uefiData"`
}

func (s *Server) getInstanceUefiData(req request) (any, *apiError) {
	in := s.find(req.form.Get("InstanceId"))
	if in == nil {
		return nil, instanceNotFound(req.form.Get("InstanceId"))
	}
	return getInstanceUefiDataResponse{RequestID: requestID, InstanceID: in.ID}, nil
}

type xmlVpc struct {
	VpcID           string     `xml:"vpcId"`
	OwnerID         string     `xml:"ownerId"`
	State           string     `xml:"state"`
	CidrBlock       string     `xml:"cidrBlock"`
	DhcpOptionsID   string     `xml:"dhcpOptionsId"`
	InstanceTenancy string     `xml:"instanceTenancy"`
	IsDefault       bool       `xml:"isDefault"`
	TagSet          *item[tag] `xml:"tagSet"`
}

type describeVpcsResponse struct {
	XMLName   xml.Name     `xml:"http://ec2.amazonaws.com/doc/2016-11-15/ DescribeVpcsResponse"`
	RequestID string       `xml:"requestId"`
	VpcSet    item[xmlVpc] `xml:"vpcSet"`
}

// describeVpcs knows one VPC: the region's default, where every instance is.
func (s *Server) describeVpcs(req request) (any, *apiError) {
	ids := indexed(req.form, "VpcId")
	f := filters(req.form)
	resp := describeVpcsResponse{RequestID: requestID}
	switch {
	case len(ids) > 0 && !contains(ids, fakeVPC),
		f["vpc-id"] != nil && !contains(f["vpc-id"], fakeVPC),
		f["isDefault"] != nil && !contains(f["isDefault"], "true"):
		return resp, nil
	}
	resp.VpcSet.Items = []xmlVpc{{VpcID: fakeVPC, OwnerID: AccountID, State: "available", CidrBlock: "172.31.0.0/16",
		DhcpOptionsID: "dopt-0fa4e000000000001", InstanceTenancy: "default", IsDefault: true, TagSet: &item[tag]{}}}
	return resp, nil
}

type returnResponse struct {
	XMLName   xml.Name
	RequestID string `xml:"requestId"`
	Return    bool   `xml:"return"`
}

// modifyInstanceAttribute accepts the attribute changes the provider makes
// around a delete (disableApiStop / disableApiTermination false): the fake
// keeps both false, so there is nothing to record.
func (s *Server) modifyInstanceAttribute(req request) (any, *apiError) {
	in := s.find(req.form.Get("InstanceId"))
	if in == nil {
		return nil, instanceNotFound(req.form.Get("InstanceId"))
	}
	if t := req.form.Get("InstanceType.Value"); t != "" {
		// EC2 changes the type of a stopped instance only.
		if in.State != StateStopped {
			return nil, &apiError{http.StatusBadRequest, "IncorrectInstanceState", fmt.Sprintf("The instance '%s' is not in the 'stopped' state.", in.ID)}
		}
		in.InstanceType = t
	}
	for _, k := range []string{"DisableApiStop.Value", "DisableApiTermination.Value"} {
		if req.form.Get(k) == "true" {
			return nil, &apiError{http.StatusBadRequest, "UnsupportedOperation", "the fake does not protect instances"}
		}
	}
	return returnResponse{XMLName: xml.Name{Space: EC2Namespace, Local: "ModifyInstanceAttributeResponse"}, RequestID: requestID, Return: true}, nil
}

// instanceNotFound is EC2's answer for an unknown instance id.
func instanceNotFound(id string) *apiError {
	return &apiError{http.StatusBadRequest, "InvalidInstanceID.NotFound", fmt.Sprintf("The instance ID '%s' does not exist", id)}
}
