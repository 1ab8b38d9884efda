package providers

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/hetznercloud/hcloud-go/v2/hcloud"
)

// HetznerPower starts, stops and reboots Hetzner Cloud servers through
// hcloud-go (Server.Poweron, Shutdown, Poweroff, Reboot, each followed by
// Action.WaitFor) and reads their status (Server.GetByID).
type HetznerPower struct {
	// Endpoint is the API's base URL; empty: Hetzner's own. Tests point it
	// at a local fake (SHARDFORM_HCLOUD_ENDPOINT).
	Endpoint string
	// PollInterval is how often actions and the server's status are polled;
	// 0: 1 s.
	PollInterval time.Duration
}

func (h HetznerPower) client(m Machine) (*hcloud.Client, int64, error) {
	id, err := strconv.ParseInt(m.ServerID, 10, 64)
	if err != nil || id <= 0 {
		return nil, 0, fmt.Errorf("hetzner: server id %q is not a Hetzner server id: %w", m.ServerID, ErrMachineNotFound)
	}
	c := hcloudClient(h.Endpoint, m.Secret["token"], powerCallTimeout,
		hcloud.WithPollOpts(hcloud.PollOpts{BackoffFunc: hcloud.ConstantBackoff(h.poll())}))
	return c, id, nil
}

func (h HetznerPower) poll() time.Duration {
	if h.PollInterval <= 0 {
		return defaultPowerPoll
	}
	return h.PollInterval
}

// hetznerState maps a Hetzner server status to a power state.
func hetznerState(s hcloud.ServerStatus) string {
	switch s {
	case hcloud.ServerStatusRunning:
		return PowerRunning
	case hcloud.ServerStatusOff:
		return PowerStopped
	case hcloud.ServerStatusStarting, hcloud.ServerStatusInitializing:
		return PowerStarting
	case hcloud.ServerStatusStopping:
		return PowerStopping
	}
	return PowerUnknown
}

func (h HetznerPower) status(ctx context.Context, c *hcloud.Client, id int64) (PowerStatus, error) {
	s, _, err := c.Server.GetByID(ctx, id)
	if err != nil {
		return PowerStatus{}, hcloudError("get server", err)
	}
	if s == nil {
		return PowerStatus{}, fmt.Errorf("hetzner: server %d: %w", id, ErrMachineNotFound)
	}
	// No addresses: a Hetzner server keeps its primary IPv4 and IPv6
	// (Primary IPs, assigned to the server until it is deleted) through
	// power on, shutdown, power off and reboot, so a power action never
	// changes the node's recorded addresses or its DNS.
	return PowerStatus{State: hetznerState(s.Status), Provider: string(s.Status)}, nil
}

// PowerStatus reads the server's status.
func (h HetznerPower) PowerStatus(ctx context.Context, m Machine) (PowerStatus, error) {
	c, id, err := h.client(m)
	if err != nil {
		return PowerStatus{}, err
	}
	return h.status(ctx, c, id)
}

// act runs one server action and waits for it to finish. Hetzner's
// conflict and locked answers are temporary (the server changed during the
// request; another action holds it): the call is tried again, busyTries
// times at most with a doubling pause, and then fails with ErrCloudBusy
// (the job's next attempt retries it).
func (h HetznerPower) act(ctx context.Context, c *hcloud.Client, id int64, name string,
	call func(context.Context, *hcloud.Server) (*hcloud.Action, *hcloud.Response, error)) error {
	pause := h.poll()
	var a *hcloud.Action
	for try := 1; ; try++ {
		var err error
		a, _, err = call(ctx, &hcloud.Server{ID: id})
		if err == nil {
			break
		}
		if hcloud.IsError(err, hcloud.ErrorCodeNotFound) {
			return fmt.Errorf("hetzner: %s server %d: %w", name, id, ErrMachineNotFound)
		}
		if !hcloud.IsError(err, hcloud.ErrorCodeConflict, hcloud.ErrorCodeLocked) {
			return hcloudError(name+" server", err)
		}
		if try == busyTries {
			return fmt.Errorf("hetzner: %s server %d: still busy after %d tries: %w: %w", name, id, busyTries, ErrCloudBusy, err)
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("hetzner: %s server %d: %w: %w", name, id, ErrCloudBusy, err)
		case <-t.C:
		}
		pause *= 2
	}
	if err := c.Action.WaitFor(ctx, a); err != nil {
		var ae hcloud.ActionError
		if errors.As(err, &ae) {
			return fmt.Errorf("hetzner: %s server %d: the action failed: %w", name, id, err)
		}
		return hcloudError(name+" server: wait for the action", err)
	}
	return nil
}

// Start powers the server on (nothing to do when it runs).
func (h HetznerPower) Start(ctx context.Context, m Machine) error {
	c, id, err := h.client(m)
	if err != nil {
		return err
	}
	st, err := h.status(ctx, c, id)
	if err != nil || st.State == PowerRunning {
		return err
	}
	return h.act(ctx, c, id, "power on", c.Server.Poweron)
}

// Stop shuts the server down gracefully (ACPI) and waits up to grace for
// it to be off, then powers it off; force powers it off at once. hard
// reports whether it was powered off.
func (h HetznerPower) Stop(ctx context.Context, m Machine, force bool, grace time.Duration) (hard bool, err error) {
	c, id, err := h.client(m)
	if err != nil {
		return false, err
	}
	st, err := h.status(ctx, c, id)
	if err != nil || st.State == PowerStopped {
		return false, err
	}
	if !force {
		if err := h.act(ctx, c, id, "shut down", c.Server.Shutdown); err != nil {
			return false, err
		}
		// The shutdown action only says the signal was sent: wait for the
		// server to be off.
		gctx, cancel := context.WithTimeout(ctx, grace)
		err := waitUntil(gctx, h.poll(), "the shutdown", func() (bool, error) {
			st, err := h.status(gctx, c, id)
			return err == nil && st.State == PowerStopped, err
		})
		cancel()
		if err == nil {
			return false, nil
		}
		if ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
			return false, err
		}
	}
	return true, h.act(ctx, c, id, "power off", c.Server.Poweroff)
}

// Reboot reboots the server (ACPI reboot); a server that is off is
// refused.
func (h HetznerPower) Reboot(ctx context.Context, m Machine) error {
	c, id, err := h.client(m)
	if err != nil {
		return err
	}
	st, err := h.status(ctx, c, id)
	if err != nil {
		return err
	}
	if st.State != PowerRunning {
		return fmt.Errorf("hetzner: reboot server %d: it is %s: %w", id, st.Provider, ErrIncorrectState)
	}
	return h.act(ctx, c, id, "reboot", c.Server.Reboot)
}
