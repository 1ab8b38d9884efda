package providers

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Power states of a machine, the same words for every cloud.
const (
	PowerRunning  = "running"
	PowerStopped  = "stopped"
	PowerStarting = "starting"
	PowerStopping = "stopping"
	PowerUnknown  = "unknown" // anything else the cloud reports (its own word is in PowerStatus.Provider)
)

// ErrMachineNotFound reports that the cloud has no server with the node's
// id (deleted outside shardform): retrying will not help.
var ErrMachineNotFound = errors.New("the cloud has no such server")

// ErrIncorrectState reports that the machine cannot take the action in
// the state it is in (rebooting a stopped server, starting a terminated
// one): retrying will not help.
var ErrIncorrectState = errors.New("the server is not in a state that allows it")

// ErrCloudBusy reports that the cloud refused the action for now (Hetzner's
// conflict and locked errors: the server changed during the request, or
// another action holds it): it is temporary, so it is retried, first
// within the call (busyTries, with backoff), then by the job's next attempt.
var ErrCloudBusy = errors.New("the server is busy with another change: retry")

// busyTries bounds the tries of an action the cloud answers busy; the
// pauses between them double from the poll interval (1 s: 1+2+4+8 s).
const busyTries = 5

// Machine is a node's server as a power action addresses it.
type Machine struct {
	ServerID string            // the cloud's id (a node's server_id)
	Region   string            // the node's region (AWS signs for it)
	Secret   map[string]string // the credential's secret fields
}

// PowerStatus is a machine's power state as its cloud reports it.
type PowerStatus struct {
	State    string `json:"state"`          // one of the Power* words
	Provider string `json:"provider_state"` // the cloud's own word (hetzner "off", aws "stopped")
	// IPv4 and IPv6 are the machine's public addresses while it runs, where
	// a power cycle can change them (an EC2 instance without an Elastic IP
	// gets a new IPv4 at every start); empty when the cloud reports none
	// or the driver does not read them (Hetzner: a server keeps its
	// primary IPs through power actions, so they are never re-read).
	// Empty means "unknown", never "remove the address".
	IPv4 string `json:"ipv4,omitempty"`
	IPv6 string `json:"ipv6,omitempty"`
}

// defaultPowerPoll is how often a power action polls the cloud for the
// end of an action or a state change.
const defaultPowerPoll = time.Second

// powerCallTimeout bounds one API call of a power action.
const powerCallTimeout = 30 * time.Second

// waitUntil calls done every interval until it reports true, fails, or
// ctx ends.
func waitUntil(ctx context.Context, interval time.Duration, what string, done func() (bool, error)) error {
	for {
		ok, err := done()
		if err != nil || ok {
			return err
		}
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-t.C:
		}
	}
}
