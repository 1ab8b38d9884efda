// Package awsfake is an in-memory fake of the EC2 and STS Query APIs on
// loopback, for tests: it answers the calls the hashicorp/aws Terraform
// provider (5.100.0) makes to plan, create, read and delete an aws_instance
// and an aws_security_group with inline rules, and to read
// aws_caller_identity and aws_ami. Point the provider's ec2 and sts
// endpoints at Server.URL.
//
// The calls hashicorp/aws 5.100.0 makes (found by running it against this
// fake, which answers unknown actions with an InvalidAction error naming
// them, see Unsupported):
//   - configure (every command): STS GetCallerIdentity (credential
//     validation and account id);
//   - data "aws_ami": DescribeImages (owners + filters), GetInstanceUefiData;
//   - create: DescribeImages (by id, for the root device), RunInstances,
//     then DescribeInstances until running (after a fixed 10 s delay);
//   - read (after create, on every refresh): DescribeInstances,
//     DescribeInstanceTypes (burstable?), DescribeTags (launch template tag,
//     volume tags), DescribeVolumes (by attachment.instance-id and by id),
//     DescribeVpcs (default VPC?), DescribeInstanceAttribute
//     (instanceInitiatedShutdownBehavior, disableApiStop,
//     disableApiTermination, userData), DescribeInstanceCreditSpecifications;
//   - delete: ModifyInstanceAttribute (DisableApiTermination=false),
//     TerminateInstances, then DescribeInstances until terminated.
//   - aws_security_group create: CreateSecurityGroup (tags in the tag
//     specification), DescribeSecurityGroups, RevokeSecurityGroupEgress
//     twice (EC2's default allow-all IPv4 egress rule, then the IPv6 one,
//     which a VPC without IPv6 lacks: InvalidPermission.NotFound, which the
//     provider ignores), AuthorizeSecurityGroupIngress
//     and AuthorizeSecurityGroupEgress (the inline rules); read:
//     DescribeSecurityGroups; delete: DescribeNetworkInterfaces (by
//     group-id: interfaces still in the group), DeleteSecurityGroup.
//     RunInstances takes the groups as SecurityGroupId.N.
//
// An instance is pending when launched and running from the next describe
// on; shutting-down when terminated and terminated from the next describe;
// stopping when stopped and stopped from the next describe, pending again
// when started (StartInstances, StopInstances, RebootInstances: power.go).
//
// Security groups live in the one (default) VPC the fake knows; a new one
// has EC2's default egress rule. As on EC2, a launch into a group that does
// not exist fails (InvalidGroup.NotFound), and deleting a group that an
// instance not yet terminated is in fails (DependencyViolation: the
// provider retries it until its delete timeout), so a configuration that
// orders the two wrongly fails here too.
//
// Credentials: with no key registered every access key is accepted; once
// Allow registers keys, only those are, and each request's SigV4 signature
// is checked against the key's secret. Refuse makes a key fail
// (AuthFailure on EC2, InvalidClientTokenId on STS) from then on.
package awsfake

import (
	"encoding/xml"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// Namespaces of the XML answers.
const (
	EC2Namespace = "http://ec2.amazonaws.com/doc/2016-11-15/"
	STSNamespace = "https://sts.amazonaws.com/doc/2011-06-15/"
)

// AccountID is the fake's account: the owner of every instance it creates.
const AccountID = "123456789012"

// Instance states, as EC2 names them.
const (
	StatePending      = "pending"
	StateRunning      = "running"
	StateShuttingDown = "shutting-down"
	StateTerminated   = "terminated"
)

// Instance is what the fake knows of one instance.
type Instance struct {
	ID           string
	Region       string // the region the launch was signed for
	ImageID      string
	InstanceType string
	State        string
	PublicIP     string
	// IPv6 is the primary network interface's IPv6 address (SetIPv6); as
	// on EC2 it stays through a stop and a start, unlike PublicIP.
	IPv6       string
	PrivateIP  string
	UserData   string // base64, as sent
	Tags       map[string]string
	VolumeTags map[string]string
	VolumeID   string
	VolumeSize int
	VolumeType string
	Encrypted  bool
	HTTPTokens string
	LaunchTime time.Time
	// SecurityGroupIDs are the groups the instance was launched in; none
	// named: the VPC's default group.
	SecurityGroupIDs []string
	groupNames       []string
	clientToken      string
	// Reboots counts RebootInstances calls that reached it (power.go).
	Reboots    int
	hangOnStop bool // a stop without Force leaves it stopping
	forcedStop bool // the stop under way was forced
}

// Server is a running fake.
type Server struct {
	URL string
	srv *httptest.Server

	mu          sync.Mutex
	calls       map[string]int
	unsupported []string
	instances   []*Instance
	groups      []*SecurityGroup
	keys        map[string]string // access key id → secret; empty: any key
	refused     map[string]bool
	seq         int
	starts      int // instances started (power.go)
}

// Start runs a fake on loopback; Close stops it.
func Start() *Server {
	s := &Server{calls: map[string]int{}, keys: map[string]string{}, refused: map[string]bool{}}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	return s
}

// New runs a fake for the duration of a test.
func New(t testing.TB) *Server {
	t.Helper()
	s := Start()
	t.Cleanup(s.Close)
	return s
}

// Close stops the fake.
func (s *Server) Close() { s.srv.Close() }

// Allow registers an access key and its secret: from then on only
// registered keys are accepted, with their signatures checked.
func (s *Server) Allow(accessKeyID, secretAccessKey string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys[accessKeyID] = secretAccessKey
}

// Refuse makes every later request signed with accessKeyID fail as AWS
// fails a revoked or unknown key.
func (s *Server) Refuse(accessKeyID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refused[accessKeyID] = true
}

// Calls returns how many times each action was called (refused and
// unsupported calls included).
func (s *Server) Calls() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.calls)
}

// Actions lists the actions called, sorted.
func (s *Server) Actions() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.calls))
	for k := range s.calls {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Unsupported lists the actions the fake was asked for and does not know.
func (s *Server) Unsupported() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.unsupported)
}

// Instances returns a copy of every instance ever created, terminated
// ones included, in creation order.
func (s *Server) Instances() []Instance {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Instance, 0, len(s.instances))
	for _, in := range s.instances {
		c := *in
		c.Tags = maps.Clone(in.Tags)
		c.VolumeTags = maps.Clone(in.VolumeTags)
		c.SecurityGroupIDs = slices.Clone(in.SecurityGroupIDs)
		c.groupNames = slices.Clone(in.groupNames)
		out = append(out, c)
	}
	return out
}

// SetTag changes a tag of an instance as someone outside Terraform would
// (the console, another tool): the next refresh sees the drift. It reports
// whether the instance exists.
func (s *Server) SetTag(id, key, value string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	in := s.find(id)
	if in == nil {
		return false
	}
	if in.Tags == nil {
		in.Tags = map[string]string{}
	}
	in.Tags[key] = value
	return true
}

// Live returns the instances that are not terminated (or shutting down).
func (s *Server) Live() []Instance {
	var out []Instance
	for _, in := range s.Instances() {
		if in.State == StatePending || in.State == StateRunning {
			out = append(out, in)
		}
	}
	return out
}

// apiError is an error answer.
type apiError struct {
	status  int
	code    string
	message string
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil || r.Method != http.MethodPost {
		writeEC2Error(w, apiError{http.StatusBadRequest, "MalformedQueryString", "the fake takes form-encoded POST requests"})
		return
	}
	action := form.Get("Action")
	sts := action == "GetCallerIdentity"

	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[action]++
	if aerr := s.authenticate(r, body, sts); aerr != nil {
		if sts {
			writeSTSError(w, *aerr)
		} else {
			writeEC2Error(w, *aerr)
		}
		return
	}
	if sts {
		s.getCallerIdentity(w, r)
		return
	}
	h, ok := ec2Action(action)
	if !ok {
		s.unsupported = append(s.unsupported, action)
		writeEC2Error(w, apiError{http.StatusBadRequest, "InvalidAction", fmt.Sprintf("The action %s is not valid for this web service (the shardform awsfake does not implement it).", action)})
		return
	}
	region := "us-east-1"
	if a, err := parseAuthorization(r.Header.Get("Authorization")); err == nil {
		if parts := strings.Split(a.scope, "/"); len(parts) == 4 {
			region = parts[1]
		}
	}
	resp, aerr := h(s, request{form: form, region: region})
	if aerr != nil {
		writeEC2Error(w, *aerr)
		return
	}
	writeXML(w, http.StatusOK, resp)
}

// authenticate checks the request's credential; the caller holds s.mu.
func (s *Server) authenticate(r *http.Request, body []byte, sts bool) *apiError {
	auth, err := parseAuthorization(r.Header.Get("Authorization"))
	refuse := func() *apiError {
		if sts {
			return &apiError{http.StatusForbidden, "InvalidClientTokenId", "The security token included in the request is invalid."}
		}
		return &apiError{http.StatusUnauthorized, "AuthFailure", "AWS was not able to validate the provided access credentials"}
	}
	if err != nil {
		return refuse()
	}
	if s.refused[auth.accessKey] {
		return refuse()
	}
	if len(s.keys) == 0 {
		return nil
	}
	secret, ok := s.keys[auth.accessKey]
	if !ok {
		return refuse()
	}
	if !auth.verify(r, body, secret) {
		return &apiError{http.StatusForbidden, "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method."}
	}
	return nil
}

func (s *Server) nextID(prefix string) string {
	s.seq++
	return fmt.Sprintf("%s-%017x", prefix, 0xf00d0000+s.seq)
}

func (s *Server) find(id string) *Instance {
	for _, in := range s.instances {
		if in.ID == id {
			return in
		}
	}
	return nil
}

func writeXML(w http.ResponseWriter, status int, v any) {
	b, err := xml.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, xml.Header)
	_, _ = w.Write(b)
}

// ec2ErrorResponse is EC2's error document.
type ec2ErrorResponse struct {
	XMLName   xml.Name `xml:"Response"`
	Errors    []xmlErr `xml:"Errors>Error"`
	RequestID string   `xml:"RequestID"`
}

type xmlErr struct {
	Type    string `xml:"Type,omitempty"`
	Code    string `xml:"Code"`
	Message string `xml:"Message"`
}

func writeEC2Error(w http.ResponseWriter, e apiError) {
	writeXML(w, e.status, ec2ErrorResponse{Errors: []xmlErr{{Code: e.code, Message: e.message}}, RequestID: requestID})
}

type stsErrorResponse struct {
	XMLName   xml.Name `xml:"https://sts.amazonaws.com/doc/2011-06-15/ ErrorResponse"`
	Error     xmlErr   `xml:"Error"`
	RequestID string   `xml:"RequestId"`
}

func writeSTSError(w http.ResponseWriter, e apiError) {
	writeXML(w, e.status, stsErrorResponse{Error: xmlErr{Type: "Sender", Code: e.code, Message: e.message}, RequestID: requestID})
}

const requestID = "5c1f0e5e-0a17-4d00-9a6e-000000000000"

type getCallerIdentityResponse struct {
	XMLName   xml.Name `xml:"https://sts.amazonaws.com/doc/2011-06-15/ GetCallerIdentityResponse"`
	Arn       string   `xml:"GetCallerIdentityResult>Arn"`
	UserID    string   `xml:"GetCallerIdentityResult>UserId"`
	Account   string   `xml:"GetCallerIdentityResult>Account"`
	RequestID string   `xml:"ResponseMetadata>RequestId"`
}

func (s *Server) getCallerIdentity(w http.ResponseWriter, _ *http.Request) {
	writeXML(w, http.StatusOK, getCallerIdentityResponse{
		Arn: "arn:aws:iam::" + AccountID + ":user/shardform", UserID: "AIDASHARDFORMFAKE0001", Account: AccountID, RequestID: requestID,
	})
}

// indexed returns the values of a Query API list: prefix.1, prefix.2, ...
func indexed(form url.Values, prefix string) []string {
	var out []string
	for i := 1; ; i++ {
		v, ok := form[fmt.Sprintf("%s.%d", prefix, i)]
		if !ok {
			return out
		}
		out = append(out, v[0])
	}
}

// filters reads Filter.N.Name / Filter.N.Value.M.
func filters(form url.Values) map[string][]string {
	out := map[string][]string{}
	for i := 1; ; i++ {
		name := form.Get(fmt.Sprintf("Filter.%d.Name", i))
		if name == "" {
			return out
		}
		out[name] = indexed(form, fmt.Sprintf("Filter.%d.Value", i))
	}
}

// glob matches EC2 filter wildcards (* and ?).
func glob(pattern, s string) bool {
	if pattern == "" {
		return s == ""
	}
	switch pattern[0] {
	case '*':
		for i := 0; i <= len(s); i++ {
			if glob(pattern[1:], s[i:]) {
				return true
			}
		}
		return false
	case '?':
		return s != "" && glob(pattern[1:], s[1:])
	default:
		return s != "" && s[0] == pattern[0] && glob(pattern[1:], s[1:])
	}
}

func anyGlob(patterns []string, s string) bool {
	return slices.ContainsFunc(patterns, func(p string) bool { return glob(p, s) })
}
