package api_test

import (
	"strings"
	"sync/atomic"
	"testing"

	"github.com/shardform/shardform/providers"
)

// shrinkingCatalog is the local driver under another name whose catalog
// loses every type once gone is set: a worker whose catalog no longer
// knows the type a request was planned with.
type shrinkingCatalog struct {
	providers.Local
	gone *atomic.Bool
}

func (shrinkingCatalog) Name() string { return "shrinking" }

func (s shrinkingCatalog) InstanceTypes() []providers.InstanceType {
	if s.gone.Load() {
		return nil
	}
	return s.Local.InstanceTypes()
}

// TestNoNodeOfUnknownCapacity: when the worker cannot tell the node's size,
// the apply fails saying so, and no node with zero capacity is registered.
func TestNoNodeOfUnknownCapacity(t *testing.T) {
	t.Parallel()
	gone := &atomic.Bool{}
	b := setup(t, setupOpts{provisioning: true, drivers: []providers.Driver{shrinkingCatalog{gone: gone}}})
	a := b.bootstrap("ops@example.com")
	body := map[string]any{"provider": "shrinking", "region": "local", "instance_type": "local-small", "name": "web-1"}
	id := b.expect(req{method: "POST", path: "/v1/provision", token: a.access, body: body}, 201).str("id")
	b.expect(req{method: "POST", path: "/v1/provision/" + id + "/plan", token: a.access}, 202)
	if r := b.waitStatus(a.access, id); r.str("status") != "planned" {
		t.Fatalf("plan: %s", r.Raw)
	}
	gone.Store(true)
	b.expect(req{method: "POST", path: "/v1/provision/" + id + "/apply", token: a.access}, 202)
	r := b.waitStatus(a.access, id)
	if r.str("status") != "failed" || !strings.Contains(r.str("error"), `instance type "local-small" is not in this worker's shrinking catalog`) {
		t.Fatalf("apply: %s", r.Raw)
	}
	if n := b.count("SELECT count(*) FROM nodes"); n != 0 {
		t.Errorf("%d nodes registered", n)
	}
}
