package providers_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hetznercloud/hcloud-go/v2/hcloud"

	"github.com/shardform/shardform/internal/fake/awsfake"
	"github.com/shardform/shardform/internal/fake/hcloudfake"
	"github.com/shardform/shardform/providers"
)

// power is what both clouds' power clients offer.
type power interface {
	PowerStatus(ctx context.Context, m providers.Machine) (providers.PowerStatus, error)
	Start(ctx context.Context, m providers.Machine) error
	Stop(ctx context.Context, m providers.Machine, force bool, grace time.Duration) (bool, error)
	Reboot(ctx context.Context, m providers.Machine) error
}

// powerCloud is one cloud's fake with a running machine on it.
type powerCloud struct {
	power   power
	machine providers.Machine
	// hang makes the machine ignore graceful shutdowns.
	hang func()
	// reboots is how many reboots reached the machine.
	reboots func() int
	// state is the cloud's own word for the machine's state.
	state func() string
	// refusedSecret is a secret the cloud refuses.
	refusedSecret map[string]string
	// setIPv6 gives the machine an IPv6 address (aws only).
	setIPv6 func(addr string)
}

func hetznerCloud(t *testing.T) powerCloud {
	fake := hcloudfake.New(t, hcloudfake.Options{})
	id := fake.AddServer("game-1")
	return powerCloud{
		power:         providers.HetznerPower{Endpoint: fake.URL, PollInterval: time.Millisecond},
		machine:       providers.Machine{ServerID: strconv.FormatInt(id, 10), Region: "fsn1", Secret: map[string]string{"token": hcloudfake.Token}},
		hang:          func() { fake.IgnoreShutdown(id) },
		reboots:       func() int { return fake.Reboots(id) },
		state:         func() string { return fake.ServerStatus(id) },
		refusedSecret: map[string]string{"token": "wrong"},
	}
}

func awsCloud(t *testing.T) powerCloud {
	fake := awsfake.New(t)
	fake.Allow("AKIAPOWERTEST0000001", "power-secret")
	id := fake.AddInstance("eu-central-1", "t3.small")
	find := func() awsfake.Instance {
		for _, in := range fake.Instances() {
			if in.ID == id {
				return in
			}
		}
		t.Fatalf("instance %s is gone", id)
		return awsfake.Instance{}
	}
	return powerCloud{
		power:         providers.AWSPower{Endpoint: fake.URL, PollInterval: time.Millisecond},
		machine:       providers.Machine{ServerID: id, Region: "eu-central-1", Secret: map[string]string{"access_key_id": "AKIAPOWERTEST0000001", "secret_access_key": "power-secret"}},
		hang:          func() { fake.IgnoreGracefulStop(id) },
		reboots:       func() int { return find().Reboots },
		state:         func() string { return find().State },
		refusedSecret: map[string]string{"access_key_id": "AKIAPOWERTEST0000001", "secret_access_key": "not-the-secret"},
		setIPv6:       func(addr string) { fake.SetIPv6(id, addr) },
	}
}

// TestPower drives each cloud's real client library (hcloud-go, the AWS
// SDK for Go v2) against the cloud's local fake: stop, start, reboot,
// graceful and forced stops, a shutdown the OS ignores, and the errors.
func TestPower(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clouds := []struct {
		name                  string
		new                   func(*testing.T) powerCloud
		stopped, runningState string
	}{
		{"hetzner", hetznerCloud, "off", "running"},
		{"aws", awsCloud, "stopped", "running"},
	}
	for _, cl := range clouds {
		t.Run(cl.name, func(t *testing.T) {
			t.Parallel()
			t.Run("stop, start and reboot", func(t *testing.T) {
				t.Parallel()
				c := cl.new(t)
				st, err := c.power.PowerStatus(ctx, c.machine)
				if err != nil || st.State != providers.PowerRunning || st.Provider != cl.runningState {
					t.Fatalf("status %+v, %v", st, err)
				}
				hard, err := c.power.Stop(ctx, c.machine, false, time.Minute)
				if err != nil || hard {
					t.Fatalf("graceful stop: hard %v, %v", hard, err)
				}
				if c.state() != cl.stopped {
					t.Fatalf("after the stop the cloud says %q", c.state())
				}
				if st, err := c.power.PowerStatus(ctx, c.machine); err != nil || st.State != providers.PowerStopped || st.Provider != cl.stopped {
					t.Fatalf("status after the stop %+v, %v", st, err)
				}
				// Stopping a stopped machine changes nothing; rebooting it is refused.
				if hard, err := c.power.Stop(ctx, c.machine, true, time.Minute); err != nil || hard {
					t.Fatalf("stop again: hard %v, %v", hard, err)
				}
				if err := c.power.Reboot(ctx, c.machine); !errors.Is(err, providers.ErrIncorrectState) {
					t.Fatalf("reboot of a stopped machine: %v", err)
				}
				if err := c.power.Start(ctx, c.machine); err != nil {
					t.Fatalf("start: %v", err)
				}
				if c.state() != cl.runningState {
					t.Fatalf("after the start the cloud says %q", c.state())
				}
				if err := c.power.Start(ctx, c.machine); err != nil {
					t.Fatalf("start a running machine: %v", err)
				}
				if err := c.power.Reboot(ctx, c.machine); err != nil || c.reboots() != 1 {
					t.Fatalf("reboot: %v, %d reboots", err, c.reboots())
				}
			})
			t.Run("forced stop", func(t *testing.T) {
				t.Parallel()
				c := cl.new(t)
				hard, err := c.power.Stop(ctx, c.machine, true, time.Minute)
				if err != nil || !hard || c.state() != cl.stopped {
					t.Fatalf("forced stop: hard %v, %v, state %q", hard, err, c.state())
				}
			})
			t.Run("a shutdown the OS ignores ends in a power-off", func(t *testing.T) {
				t.Parallel()
				c := cl.new(t)
				c.hang()
				hard, err := c.power.Stop(ctx, c.machine, false, 50*time.Millisecond)
				if err != nil || !hard || c.state() != cl.stopped {
					t.Fatalf("stop: hard %v, %v, state %q", hard, err, c.state())
				}
			})
			t.Run("refused credential", func(t *testing.T) {
				t.Parallel()
				c := cl.new(t)
				m := c.machine
				m.Secret = c.refusedSecret
				if _, err := c.power.PowerStatus(ctx, m); !errors.Is(err, providers.ErrCredentialRefused) {
					t.Fatalf("status with a refused credential: %v", err)
				}
				if err := c.power.Start(ctx, m); !errors.Is(err, providers.ErrCredentialRefused) {
					t.Fatalf("start with a refused credential: %v", err)
				}
			})
			t.Run("unknown server", func(t *testing.T) {
				t.Parallel()
				c := cl.new(t)
				m := c.machine
				m.ServerID += "9"
				if _, err := c.power.PowerStatus(ctx, m); !errors.Is(err, providers.ErrMachineNotFound) {
					t.Fatalf("status of an unknown server: %v", err)
				}
				if _, err := c.power.Stop(ctx, m, true, time.Second); !errors.Is(err, providers.ErrMachineNotFound) {
					t.Fatalf("stop of an unknown server: %v", err)
				}
			})
		})
	}
}

// TestPowerAddresses: what each client reports of a machine's addresses
// across a stop and a start. EC2 (the fake, as EC2 without an Elastic IP)
// gives the instance a new public IPv4 and keeps its IPv6, reporting
// neither while it is stopped; Hetzner keeps a server's primary IPs, so
// its client reports none (the node's recorded addresses stand).
func TestPowerAddresses(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t.Run("aws", func(t *testing.T) {
		t.Parallel()
		c := awsCloud(t)
		st, err := c.power.PowerStatus(ctx, c.machine)
		if err != nil || !strings.HasPrefix(st.IPv4, "198.51.100.") || st.IPv6 != "" {
			t.Fatalf("status %+v, %v", st, err)
		}
		first := st.IPv4
		if _, err := c.power.Stop(ctx, c.machine, true, time.Minute); err != nil {
			t.Fatal(err)
		}
		if st, err := c.power.PowerStatus(ctx, c.machine); err != nil || st.IPv4 != "" {
			t.Fatalf("status of the stopped instance %+v, %v", st, err)
		}
		c.setIPv6("2001:db8::5")
		if err := c.power.Start(ctx, c.machine); err != nil {
			t.Fatal(err)
		}
		st, err = c.power.PowerStatus(ctx, c.machine)
		if err != nil || st.IPv4 == first || !strings.HasPrefix(st.IPv4, "203.0.113.") || st.IPv6 != "2001:db8::5" {
			t.Fatalf("status after the start %+v (first address %s), %v", st, first, err)
		}
		if err := c.power.Reboot(ctx, c.machine); err != nil {
			t.Fatal(err)
		}
		if again, err := c.power.PowerStatus(ctx, c.machine); err != nil || again.IPv4 != st.IPv4 || again.IPv6 != st.IPv6 {
			t.Fatalf("status after a reboot %+v, %v; before %+v", again, err, st)
		}
	})
	t.Run("hetzner", func(t *testing.T) {
		t.Parallel()
		c := hetznerCloud(t)
		if _, err := c.power.Stop(ctx, c.machine, true, time.Minute); err != nil {
			t.Fatal(err)
		}
		if err := c.power.Start(ctx, c.machine); err != nil {
			t.Fatal(err)
		}
		if st, err := c.power.PowerStatus(ctx, c.machine); err != nil || st.IPv4 != "" || st.IPv6 != "" {
			t.Fatalf("status after the start %+v, %v", st, err)
		}
	})
}

// TestHetznerPowerBusyAndFailedActions: Hetzner's locked (and conflict)
// answers are temporary: an action locked a few times is tried again and
// succeeds; one locked past the bound fails with ErrCloudBusy (retried by
// the job, never the final ErrIncorrectState). An action that starts and
// then ends with status "error" fails with hcloud's ActionError.
func TestHetznerPowerBusyAndFailedActions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	setup := func(t *testing.T) (*hcloudfake.Server, int64, providers.HetznerPower, providers.Machine) {
		fake := hcloudfake.New(t, hcloudfake.Options{})
		id := fake.AddServer("game-1")
		fake.SetServerStatus(id, hcloudfake.StatusOff)
		return fake, id, providers.HetznerPower{Endpoint: fake.URL, PollInterval: time.Millisecond},
			providers.Machine{ServerID: strconv.FormatInt(id, 10), Region: "fsn1", Secret: map[string]string{"token": hcloudfake.Token}}
	}
	t.Run("locked, then free", func(t *testing.T) {
		t.Parallel()
		fake, id, p, m := setup(t)
		fake.LockNextActions(3)
		if err := p.Start(ctx, m); err != nil {
			t.Fatalf("start of a server locked 3 times: %v", err)
		}
		if got := fake.ServerStatus(id); got != hcloudfake.StatusRunning {
			t.Errorf("after the start the server is %q", got)
		}
		if got := fake.ActionCalls()["poweron"]; got != 1 {
			t.Errorf("%d power-on actions started, want 1 (the locked answers start none)", got)
		}
	})
	t.Run("locked past the bound", func(t *testing.T) {
		t.Parallel()
		fake, id, p, m := setup(t)
		fake.LockNextActions(100)
		err := p.Start(ctx, m)
		if !errors.Is(err, providers.ErrCloudBusy) || errors.Is(err, providers.ErrIncorrectState) || !strings.Contains(err.Error(), "locked") {
			t.Fatalf("start of a server that stays locked: %v", err)
		}
		if got := fake.ServerStatus(id); got != hcloudfake.StatusOff {
			t.Errorf("the server is %q", got)
		}
		fake.LockNextActions(0)
		if err := p.Start(ctx, m); err != nil {
			t.Fatalf("start once the lock is gone: %v", err)
		}
	})
	t.Run("action ends in error", func(t *testing.T) {
		t.Parallel()
		fake, id, p, m := setup(t)
		fake.FailNextActionResults(1)
		err := p.Start(ctx, m)
		var ae hcloud.ActionError
		if !errors.As(err, &ae) || ae.Code != "action_failed" || !strings.Contains(err.Error(), "the action failed") {
			t.Fatalf("start whose action ends in error: %v", err)
		}
		if errors.Is(err, providers.ErrIncorrectState) || errors.Is(err, providers.ErrMachineNotFound) {
			t.Errorf("a failed action is not final: %v", err)
		}
		if got := fake.ServerStatus(id); got != hcloudfake.StatusOff {
			t.Errorf("after the failed action the server is %q", got)
		}
	})
}
