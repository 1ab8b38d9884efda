package cluster

import (
	"context"
	"testing"
	"time"
)

// TestWorkerKilledMidApply: two API processes and two worker processes
// (default settings but a slow local apply, so applies are in flight); 40
// requests through both APIs; one worker SIGKILLed while it applies. The
// other worker retries the dead one's runs within seconds (not after the
// job timeout): all 40 end applied, 40 nodes, no state lock left, no run
// left running, and every apply run ran once to its end.
func TestWorkerKilledMidApply(t *testing.T) {
	c := newCluster(t)
	api1 := c.start("api", "api-1")
	api2 := c.start("api", "api-2")
	slow := "SHARDFORM_LOCAL_APPLY_DELAY=2s"
	w1 := c.start("worker", "worker-1", slow)
	c.start("worker", "worker-2", slow)

	token := signIn(t, c.client(api1, ""))
	clients := []*client{c.client(api1, token), c.client(api2, token)}
	const n = 40
	ids := createAndPlan(t, clients, n)
	for id, r := range waitAll(t, clients[0], ids, 5*time.Minute) {
		if r.Status != "planned" {
			t.Fatalf("request %s after its plan: %+v", id, r)
		}
	}
	for i, id := range ids {
		clients[i%2].must("POST", "/v1/provision/"+id+"/apply", nil, nil)
	}

	// Halfway, with worker-1 in the middle of applies: SIGKILL.
	ctx := context.Background()
	deadline := time.Now().Add(3 * time.Minute)
	for c.count("SELECT count(*) FROM provision_runs WHERE kind = 'apply' AND status = 'succeeded'") < n/2 ||
		c.count("SELECT count(*) FROM provision_runs WHERE kind = 'apply' AND status = 'running' AND worker = 'worker-1'") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("never saw worker-1 applying past halfway")
		}
		time.Sleep(20 * time.Millisecond)
	}
	rows, err := c.pool.Query(ctx, "SELECT id::text FROM provision_runs WHERE status = 'running' AND worker = 'worker-1'")
	if err != nil {
		t.Fatal(err)
	}
	var held []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		held = append(held, id)
	}
	rows.Close()
	c.kill(w1)
	killed := time.Now()
	t.Logf("killed worker-1 holding %d running run(s)", len(held))

	// Each run it held is taken by worker-2: how long that took is the
	// recovery time (a SIGKILLed worker's jobs would otherwise wait for
	// River's rescuer, after the 1 h job timeout).
	for _, id := range held {
		for c.count("SELECT count(*) FROM provision_runs WHERE id = $1 AND (status <> 'running' OR worker = 'worker-2')", id) == 0 {
			if time.Since(killed) > 2*time.Minute {
				t.Fatalf("run %s of the killed worker not found dead after %v", id, time.Since(killed))
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Logf("run %s found dead %v after the kill", id, time.Since(killed).Round(10*time.Millisecond))
		for c.count("SELECT count(*) FROM provision_runs WHERE id = $1 AND worker = 'worker-2'", id) == 0 {
			if time.Since(killed) > 2*time.Minute {
				t.Fatalf("run %s of the killed worker not retried after %v", id, time.Since(killed))
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Logf("run %s retried by worker-2 %v after the kill", id, time.Since(killed).Round(10*time.Millisecond))
	}

	for id, r := range waitAll(t, clients[1], ids, 5*time.Minute) {
		if r.Status != "applied" {
			t.Errorf("request %s: %+v", id, r)
		}
	}
	if got := c.count("SELECT count(*) FROM nodes"); got != n {
		t.Errorf("%d nodes, want %d", got, n)
	}
	if got := c.count("SELECT count(*) FROM tf_state_locks"); got != 0 {
		t.Errorf("%d state locks left", got)
	}
	if got := c.count("SELECT count(*) FROM provision_runs WHERE status IN ('queued', 'running')"); got != 0 {
		t.Errorf("%d runs left queued or running", got)
	}
	if got := c.count("SELECT count(*) FROM provision_runs WHERE kind = 'apply' AND status = 'succeeded'"); got != n {
		t.Errorf("%d apply runs succeeded, want one per request (%d)", got, n)
	}
	if got := c.count("SELECT count(*) FROM provision_runs WHERE kind = 'apply' AND status = 'succeeded' AND id = ANY($1::uuid[]) AND attempt = 2", held); got != len(held) {
		t.Errorf("%d of the %d interrupted runs finished on their second attempt", got, len(held))
	}
	// Every provisioning job completes: the plans' render jobs (River
	// priority 4) finish after the applies, and one the killed worker held
	// is rescued by River after the job timeout (15 s here).
	deadline = time.Now().Add(2 * time.Minute)
	for {
		got := c.count("SELECT count(*) FROM river_job WHERE state NOT IN ('completed')  AND kind LIKE 'provision_%'")
		if got == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("%d provisioning jobs not completed 2 minutes after the applies", got)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got := c.count("SELECT count(*) FROM provision_runs WHERE kind = 'plan' AND plan_json IS NULL"); got != 0 {
		t.Errorf("%d plan runs not rendered for review", got)
	}
}

// TestManyRequestsEightWorkers: 400 requests planned and applied by one
// worker process running 8 Terraform jobs at a time: none fails (the pg
// backend's workspace-creation lock made 1 in 100–400 fail).
func TestManyRequestsEightWorkers(t *testing.T) {
	if testing.Short() {
		t.Skip("400 plans and applies: not with -short")
	}
	c := newCluster(t)
	api := c.start("api", "api-1")
	c.start("worker", "worker-1", "SHARDFORM_TERRAFORM_WORKERS=8")
	token := signIn(t, c.client(api, ""))
	cl := c.client(api, token)
	const n = 400
	ids := createAndPlan(t, []*client{cl}, n)
	for id, r := range waitAll(t, cl, ids, 10*time.Minute) {
		if r.Status != "planned" {
			t.Fatalf("request %s after its plan: %+v", id, r)
		}
	}
	for _, id := range ids {
		cl.must("POST", "/v1/provision/"+id+"/apply", nil, nil)
	}
	failed := 0
	for id, r := range waitAll(t, cl, ids, 10*time.Minute) {
		if r.Status != "applied" {
			failed++
			t.Errorf("request %s: %+v", id, r)
		}
	}
	if failed > 0 {
		t.Fatalf("%d of %d requests failed", failed, n)
	}
	if got := c.count("SELECT count(*) FROM nodes"); got != n {
		t.Errorf("%d nodes, want %d", got, n)
	}
	if got := c.count("SELECT count(*) FROM tf_state_locks"); got != 0 {
		t.Errorf("%d state locks left", got)
	}
}
