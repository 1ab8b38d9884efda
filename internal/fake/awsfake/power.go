package awsfake

import (
	"encoding/xml"
	"fmt"
	"net/http"
)

// Instance states of a stop and a start, as EC2 names them.
const (
	StateStopping = "stopping"
	StateStopped  = "stopped"
)

// The power calls (StartInstances, StopInstances, RebootInstances): as on
// EC2, a start makes a stopped instance pending, and the next describe
// finds it running; a stop makes a running one stopping, and the next
// describe finds it stopped. Starting a running instance or stopping a
// stopped one changes nothing; a terminated one, or rebooting a stopped
// one, is IncorrectInstanceState. A stopped instance that is started
// gets a new public IPv4 (203.0.113.x), as one without an Elastic IP
// does, and DescribeInstances reports it once it runs (a stopped or
// pending instance has none); its IPv6 address (SetIPv6) stays.

// IgnoreGracefulStop makes an instance hang in stopping after a stop
// without Force (an OS that does not shut down): only a forced stop
// stops it. It reports whether the instance exists.
func (s *Server) IgnoreGracefulStop(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	in := s.find(id)
	if in != nil {
		in.hangOnStop = true
	}
	return in != nil
}

// SetState changes an instance's state as someone outside shardform would
// (the console). It reports whether the instance exists.
func (s *Server) SetState(id, state string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	in := s.find(id)
	if in != nil {
		in.State = state
	}
	return in != nil
}

// SetIPv6 gives an instance an IPv6 address on its network interface
// (kept through stops and starts, as on EC2). It reports whether the
// instance exists.
func (s *Server) SetIPv6(id, addr string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	in := s.find(id)
	if in != nil {
		in.IPv6 = addr
	}
	return in != nil
}

// AddInstance registers a running instance launched outside Terraform in
// region and returns its id.
func (s *Server) AddInstance(region, instanceType string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	in := &Instance{ID: s.nextID("i"), Region: region, InstanceType: instanceType, State: StateRunning, PublicIP: fmt.Sprintf("198.51.100.%d", (len(s.instances)+10)%250+1),
		Tags: map[string]string{}, VolumeTags: map[string]string{}, VolumeID: s.nextID("vol"), VolumeSize: 8, VolumeType: "gp3", HTTPTokens: "required"}
	s.instances = append(s.instances, in)
	return in.ID
}

type stateChangeResponse struct {
	XMLName      xml.Name
	RequestID    string            `xml:"requestId"`
	InstancesSet item[stateChange] `xml:"instancesSet"`
}

// powerChange applies change to every named instance and answers EC2's
// state change list; the caller holds s.mu.
func (s *Server) powerChange(req request, response string, change func(in *Instance) *apiError) (any, *apiError) {
	ids := indexed(req.form, "InstanceId")
	if len(ids) == 0 {
		return nil, &apiError{http.StatusBadRequest, "MissingParameter", "The request must contain the parameter InstanceId"}
	}
	resp := stateChangeResponse{XMLName: xml.Name{Space: EC2Namespace, Local: response}, RequestID: requestID}
	for _, id := range ids {
		in := s.find(id)
		if in == nil {
			return nil, instanceNotFound(id)
		}
		prev := in.state()
		if aerr := change(in); aerr != nil {
			return nil, aerr
		}
		resp.InstancesSet.Items = append(resp.InstancesSet.Items, stateChange{in.ID, in.state(), prev})
	}
	return resp, nil
}

func incorrectState(in *Instance, what string) *apiError {
	return &apiError{http.StatusBadRequest, "IncorrectInstanceState",
		fmt.Sprintf("The instance '%s' is not in a state from which it can be %s.", in.ID, what)}
}

func (s *Server) startInstances(req request) (any, *apiError) {
	return s.powerChange(req, "StartInstancesResponse", func(in *Instance) *apiError {
		switch in.State {
		case StateStopped:
			in.State, in.forcedStop = StatePending, false
			if in.PublicIP != "" {
				// As EC2 without an Elastic IP: a new public address at every start.
				s.starts++
				in.PublicIP = fmt.Sprintf("203.0.113.%d", s.starts%250+1)
			}
		case StatePending, StateRunning:
		default:
			return incorrectState(in, "started")
		}
		return nil
	})
}

func (s *Server) stopInstances(req request) (any, *apiError) {
	force := req.form.Get("Force") == "true"
	return s.powerChange(req, "StopInstancesResponse", func(in *Instance) *apiError {
		switch in.State {
		case StatePending, StateRunning, StateStopping:
			in.State = StateStopping
			in.forcedStop = in.forcedStop || force
		case StateStopped:
		default:
			return incorrectState(in, "stopped")
		}
		return nil
	})
}

type rebootInstancesResponse struct {
	XMLName   xml.Name `xml:"http://ec2.amazonaws.com/doc/2016-11-15/ RebootInstancesResponse"`
	RequestID string   `xml:"requestId"`
	Return    bool     `xml:"return"`
}

func (s *Server) rebootInstances(req request) (any, *apiError) {
	ids := indexed(req.form, "InstanceId")
	if len(ids) == 0 {
		return nil, &apiError{http.StatusBadRequest, "MissingParameter", "The request must contain the parameter InstanceId"}
	}
	for _, id := range ids {
		in := s.find(id)
		if in == nil {
			return nil, instanceNotFound(id)
		}
		if in.State != StateRunning {
			return nil, incorrectState(in, "rebooted")
		}
	}
	for _, id := range ids {
		s.find(id).Reboots++
	}
	return rebootInstancesResponse{RequestID: requestID, Return: true}, nil
}
