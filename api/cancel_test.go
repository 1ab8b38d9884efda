package api_test

import (
	"strings"
	"testing"
	"time"

	"github.com/shardform/shardform/providers"
)

// slowLocal is the local driver under another name with a slow apply: a
// run that is still going when the test cancels it.
type slowLocal struct{ providers.Local }

func (slowLocal) Name() string { return "slow" }

func TestCancelARunningApply(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{provisioning: true, drivers: []providers.Driver{slowLocal{providers.Local{ApplyDelay: 10 * time.Minute}}}})
	a := b.bootstrap("ops@example.com")
	body := map[string]any{"provider": "slow", "region": "local", "instance_type": "local-small", "name": "web-1"}
	id := b.expect(req{method: "POST", path: "/v1/provision", token: a.access, body: body}, 201).str("id")
	b.expect(req{method: "POST", path: "/v1/provision/" + id + "/plan", token: a.access}, 202)
	if r := b.waitStatus(a.access, id); r.str("status") != "planned" {
		t.Fatalf("plan: %s", r.Raw)
	}
	b.expect(req{method: "POST", path: "/v1/provision/" + id + "/apply", token: a.access}, 202)
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(string(b.expect(req{method: "GET", path: "/v1/provision/" + id + "/logs", token: a.access}, 200).Raw), "Creating...") {
		if time.Now().After(deadline) {
			t.Fatal("the apply never started")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if r := b.expect(req{method: "POST", path: "/v1/provision/" + id + "/cancel", token: a.access}, 202); r.str("status") != "applying" {
		t.Errorf("cancel answered %s", r.Raw)
	}
	r := b.waitStatusFor(a.access, id, 60*time.Second)
	if r.str("status") != "failed" || !strings.Contains(r.str("error"), "apply cancelled: some resources may have been made") {
		t.Fatalf("after the cancel: %s", r.Raw)
	}
	if n := b.count("SELECT count(*) FROM tf_state_locks"); n != 0 {
		t.Errorf("%d state locks left", n)
	}
	if n := b.count("SELECT count(*) FROM nodes"); n != 0 {
		t.Errorf("%d nodes registered by a cancelled apply", n)
	}
	// Nothing runs now: a second cancel is refused.
	if r := b.expect(req{method: "POST", path: "/v1/provision/" + id + "/cancel", token: a.access}, 409); !strings.Contains(r.errMsg(), "nothing to cancel: the provision request is failed") {
		t.Errorf("second cancel: %s", r.Raw)
	}
}

func TestCancelAQueuedRun(t *testing.T) {
	t.Parallel()
	// No worker runs the jobs: every run stays queued.
	b := setup(t, setupOpts{provisioning: true, externalWorkers: true})
	a := b.bootstrap("ops@example.com")
	reader := b.apiToken(a, "provision:read")
	id := b.expect(req{method: "POST", path: "/v1/provision", token: a.access, body: localBody("web-1")}, 201).str("id")
	b.expect(req{method: "POST", path: "/v1/provision/" + id + "/cancel", token: a.access}, 409)
	b.expect(req{method: "POST", path: "/v1/provision/" + id + "/plan", token: a.access}, 202)
	b.expect(req{method: "POST", path: "/v1/provision/" + id + "/cancel", token: reader}, 403)
	r := b.expect(req{method: "POST", path: "/v1/provision/" + id + "/cancel", token: a.access}, 202)
	if r.str("status") != "pending" || r.str("error") != "cancelled before it ran" {
		t.Fatalf("cancel of a queued plan: %s", r.Raw)
	}
	if n := b.count("SELECT count(*) FROM river_job WHERE kind = 'provision_plan' AND state = 'cancelled'"); n != 1 {
		t.Errorf("%d cancelled plan jobs, want 1", n)
	}
	// The request can be planned again.
	b.expect(req{method: "POST", path: "/v1/provision/" + id + "/plan", token: a.access}, 202)
	other := b.register("other@example.com")
	b.expect(req{method: "POST", path: "/v1/provision/" + id + "/cancel", token: other.access}, 404)
}
