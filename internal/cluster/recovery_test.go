package cluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
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
	watch := watchRuns(c)
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

	// Each run it held is taken by worker-2 within the bound, 30 s
	// with default settings: how long that took is the recovery time (a
	// SIGKILLed worker's jobs would otherwise wait for River's rescuer,
	// after the 1 h job timeout).
	const bound = 30 * time.Second
	for _, id := range held {
		for c.count("SELECT count(*) FROM provision_runs WHERE id = $1 AND (status <> 'running' OR worker = 'worker-2')", id) == 0 {
			if time.Since(killed) > bound {
				t.Fatalf("run %s of the killed worker not found dead %v after the kill (bound %v)", id, time.Since(killed), bound)
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Logf("run %s found dead %v after the kill", id, time.Since(killed).Round(10*time.Millisecond))
		for c.count("SELECT count(*) FROM provision_runs WHERE id = $1 AND worker = 'worker-2'", id) == 0 {
			if time.Since(killed) > bound {
				t.Fatalf("run %s of the killed worker not retried %v after the kill (bound %v)", id, time.Since(killed), bound)
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
	// No run was ever seen running twice: the killed worker's runs ran
	// once per attempt (1 on worker-1, then 2 on worker-2), every other
	// run only in its first attempt, and none ran again once it ended.
	seen, err := watch()
	if err != nil {
		t.Fatal(err)
	}
	wasHeld := map[string]bool{}
	for _, id := range held {
		wasHeld[id] = true
	}
	for id, o := range seen {
		if o.again {
			t.Errorf("run %s seen running again after it ended", id)
		}
		want := "1"
		if wasHeld[id] {
			want = "1,2"
		}
		if got := o.attempts(); got != want && !(wasHeld[id] && got == "2") {
			t.Errorf("run %s seen running in attempts %s, want %s", id, got, want)
		}
	}
	if len(seen) != n {
		t.Errorf("saw %d apply runs running, want %d", len(seen), n)
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

// observed is what watchRuns saw of one run.
type observed struct {
	running map[int]string // attempt → the worker seen running it
	ended   bool
	again   bool // seen running after it was seen ended
}

func (o *observed) attempts() string {
	var a []string
	for i := 1; i <= 10; i++ {
		if _, ok := o.running[i]; ok {
			a = append(a, strconv.Itoa(i))
		}
	}
	return strings.Join(a, ",")
}

// watchRuns polls the apply runs every 10 ms until the returned func is
// called, which gives what it saw of each run (or the first query error).
func watchRuns(c *cluster) func() (map[string]*observed, error) {
	seen := map[string]*observed{}
	stop, done := make(chan struct{}), make(chan error, 1)
	go func() {
		for {
			rows, err := c.pool.Query(context.Background(), "SELECT id::text, status, attempt, worker FROM provision_runs WHERE kind = 'apply'")
			if err != nil {
				done <- err
				return
			}
			for rows.Next() {
				var id, status, worker string
				var attempt int
				if err := rows.Scan(&id, &status, &attempt, &worker); err != nil {
					rows.Close()
					done <- err
					return
				}
				o := seen[id]
				if o == nil {
					o = &observed{running: map[int]string{}}
					seen[id] = o
				}
				switch status {
				case "running":
					if o.ended {
						o.again = true
					}
					if w, ok := o.running[attempt]; ok && w != worker {
						o.again = true // one attempt, two workers
					}
					o.running[attempt] = worker
				case "succeeded", "failed", "cancelled":
					o.ended = true
				}
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				done <- err
				return
			}
			select {
			case <-stop:
				done <- nil
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	return func() (map[string]*observed, error) {
		close(stop)
		return seen, <-done
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

// TestLivenessLostWhileAlive: the worker applying a request loses its
// liveness session (pg_terminate_backend) while it lives on. Its
// Terraform is killed at once, before the run is retried, not after the
// cancel grace period: the workers' Terraform is a wrapper deaf to SIGINT
// (the real terraform is its child, killed with it by a parent-death
// signal), so only a kill stops it. The request ends applied with one
// node and one succeeded apply run, and the live holder gave its job back
// itself.
func TestLivenessLostWhileAlive(t *testing.T) {
	c := newCluster(t)
	api := c.start("api", "api-1")
	real, err := exec.LookPath("terraform")
	if err != nil {
		t.Skip(err)
	}
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skipf("setpriv (util-linux) is not installed: %v", err)
	}
	deaf := filepath.Join(c.dir, "deaf", "terraform")
	if err := os.MkdirAll(filepath.Dir(deaf), 0o755); err != nil {
		t.Fatal(err)
	}
	script := "#!/bin/sh\ntrap '' INT\nsetpriv --pdeathsig KILL -- " + real + " \"$@\" &\nwait $!\n"
	if err := os.WriteFile(deaf, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	slow := []string{"SHARDFORM_LOCAL_APPLY_DELAY=20s", "SHARDFORM_TERRAFORM_PATH=" + deaf}
	workers := map[string]*proc{"worker-1": c.start("worker", "worker-1", slow...), "worker-2": c.start("worker", "worker-2", slow...)}
	cl := c.client(api, signIn(t, c.client(api, "")))
	ids := createAndPlan(t, []*client{cl}, 1)
	id := ids[0]
	if r := waitAll(t, cl, ids, 2*time.Minute)[id]; r.Status != "planned" {
		t.Fatalf("after its plan: %+v", r)
	}
	cl.must("POST", "/v1/provision/"+id+"/apply", nil, nil)

	// Wait until Terraform is inside the slow create.
	ctx := context.Background()
	deadline := time.Now().Add(2 * time.Minute)
	for c.count("SELECT count(*) FROM provision_logs WHERE provision_id = $1 AND operation = 'apply' AND chunk LIKE '%Creating...%'", id) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the apply never started creating")
		}
		time.Sleep(50 * time.Millisecond)
	}
	var runID, holder string
	if err := c.pool.QueryRow(ctx, "SELECT id::text, worker FROM provision_runs WHERE provision_id = $1 AND kind = 'apply' AND status = 'running' AND attempt = 1", id).Scan(&runID, &holder); err != nil {
		t.Fatal(err)
	}
	tf := childrenNamed(t, workers[holder].cmd.Process.Pid, "terraform")
	if len(tf) != 1 {
		t.Fatalf("%s runs %d terraform processes, want 1 (the apply)", holder, len(tf))
	}
	inner := childrenNamed(t, tf[0], "terraform")
	if len(inner) != 1 {
		t.Fatalf("the wrapper runs %d terraform processes, want 1", len(inner))
	}
	tf = append(tf, inner[0])
	anyAlive := func() bool { return alive(tf[0]) || alive(tf[1]) }

	// The holder's liveness session ends (the session holding this run's
	// lock: the other worker may hold another run's, such as the plan's
	// render); the holder lives on.
	var ended int
	if err := c.pool.QueryRow(ctx, `SELECT count(*) FROM (SELECT pg_terminate_backend(l.pid) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
		WHERE l.locktype = 'advisory' AND l.granted AND a.application_name = 'shardform run liveness'
		AND ((l.classid::bigint << 32) | l.objid::bigint) = hashtextextended('shardform-run:' || $1, 0)) t`, runID).Scan(&ended); err != nil || ended != 1 {
		t.Fatalf("ended %d liveness sessions (%v), want 1", ended, err)
	}
	lost := time.Now()
	var gone time.Duration
	for c.count("SELECT count(*) FROM provision_runs WHERE id = $1 AND attempt >= 2", runID) == 0 {
		if gone == 0 && !anyAlive() {
			gone = time.Since(lost)
		}
		if time.Since(lost) > time.Minute {
			t.Fatalf("run %s not retried a minute after its liveness session ended", runID)
		}
		time.Sleep(10 * time.Millisecond)
	}
	retried := time.Since(lost)
	if gone == 0 && !anyAlive() {
		gone = time.Since(lost)
	}
	if gone == 0 || gone > retried {
		t.Fatalf("the first attempt's terraform (pids %v) was still running when the retry started %v after the liveness loss", tf, retried.Round(time.Millisecond))
	}
	t.Logf("liveness lost: terraform gone within %v, run retried after %v", gone.Round(time.Millisecond), retried.Round(time.Millisecond))
	if p := workers[holder]; func() bool {
		select {
		case <-p.done:
			return true
		default:
			return false
		}
	}() {
		t.Fatalf("%s exited: it should live on without its liveness session", holder)
	}

	if r := waitAll(t, cl, ids, 3*time.Minute)[id]; r.Status != "applied" {
		t.Fatalf("after the retry: %+v", r)
	}
	if got := c.count("SELECT count(*) FROM nodes"); got != 1 {
		t.Errorf("%d nodes, want 1", got)
	}
	if got := c.count("SELECT count(*) FROM provision_runs WHERE kind = 'apply' AND status = 'succeeded'"); got != 1 {
		t.Errorf("%d apply runs succeeded, want 1", got)
	}
	if got := c.count("SELECT count(*) FROM provision_runs WHERE kind = 'apply'"); got != 1 {
		t.Errorf("%d apply runs, want 1", got)
	}
	if got := c.count("SELECT count(*) FROM tf_state_locks"); got != 0 {
		t.Errorf("%d state locks left", got)
	}
	if got := c.count("SELECT count(*) FROM river_job WHERE kind = 'provision_apply' AND state = 'completed' AND attempt >= 2"); got != 1 {
		t.Errorf("%d apply jobs completed on a retry, want 1", got)
	}
	// The live holder gave its job back itself (the rescuer had nothing
	// to retry).
	if got := c.count("SELECT count(*) FROM river_job WHERE kind = 'provision_apply' AND array_to_string(errors, ' ') LIKE '%lost its liveness session during attempt 1%'"); got != 1 {
		t.Errorf("%d apply jobs given back by their holder, want 1", got)
	}
}

// childrenNamed lists the processes whose parent is pid and whose command
// is name.
func childrenNamed(t *testing.T, pid int, name string) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	var out []int
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, ppid, ok := procStat(child)
		if ok && ppid == pid && comm == name {
			out = append(out, child)
		}
	}
	return out
}

// procStat reads a process's command and parent from /proc/pid/stat.
func procStat(pid int) (comm string, ppid int, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", 0, false
	}
	s := string(b)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return "", 0, false
	}
	fields := strings.Fields(s[end+1:])
	if len(fields) < 2 {
		return "", 0, false
	}
	ppid, err = strconv.Atoi(fields[1])
	return s[open+1 : end], ppid, err == nil && fields[0] != "Z"
}

// alive: pid is a running process (not gone, not a zombie).
func alive(pid int) bool {
	_, _, ok := procStat(pid)
	return ok
}
