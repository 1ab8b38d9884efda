package api_test

import "testing"

// TestAuditSkipsComputations: a POST that only computes (a planner answer)
// leaves no audit entry; one that changes state does.
func TestAuditSkipsComputations(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a := b.bootstrap("ops@example.com")
	audits := func() int { return b.count("SELECT count(*) FROM audit_logs") }
	before := audits()
	for _, r := range []req{
		{method: "POST", path: "/v1/planner/recommend", token: a.access, body: map[string]any{"cpu": 1, "memory_gb": 2, "disk_gb": 10}},
		{method: "POST", path: "/v1/planner/recommend-for-template", token: a.access, body: map[string]any{"template": "valheim", "players": 4}},
		{method: "POST", path: "/v1/planner/suggest-fit", token: a.access, body: map[string]any{"cpu": 1, "memory_gb": 2, "disk_gb": 10}},
	} {
		b.expect(r, 200)
	}
	if n := audits(); n != before {
		t.Errorf("planner computations wrote %d audit entries", n-before)
	}
	b.expect(req{method: "POST", path: "/v1/api-tokens", token: a.access, body: map[string]any{"name": "ci", "scopes": []string{"planner:read"}}}, 201)
	if n := audits(); n != before+1 {
		t.Errorf("creating a token wrote %d audit entries, want 1", n-before)
	}
}
