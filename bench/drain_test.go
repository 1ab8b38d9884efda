package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shardform/shardform/identity"
	"github.com/shardform/shardform/internal/app"
	"github.com/shardform/shardform/placement"
	"github.com/shardform/shardform/seal"
	"github.com/shardform/shardform/store"
	"github.com/shardform/shardform/store/storetest"
	"github.com/shardform/shardform/worker"
)

// statementCounter counts the statements a pool sends (BEGIN and COMMIT
// included: each is a round trip).
type statementCounter struct{ n atomic.Int64 }

func (c *statementCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	c.n.Add(1)
	return ctx
}

func (*statementCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// BenchmarkDrain is POST /v1/nodes/{id}/drain of a node holding 100
// instances in an organization of 1,000 nodes (one provider and region,
// most of them partly used), end to end over loopback: the API cordons the
// node, writes the migration record with its 100 moves and queues the
// node_drain job in one transaction (202); a River worker takes the job
// and makes the moves, each in its own transaction under the locks of both
// nodes and the instance with the move endpoint's fit check, choosing each
// target by suggest-fit's binpack scoring over the 999 other nodes; the
// client polls GET /v1/migrations/{id} every 5 ms until it has ended
// (target: under 1 s). The worker's service has a pool of its own that
// counts its statements: statements per move is that count over the
// moves, the job's start and end included.
func BenchmarkDrain(b *testing.B) {
	ctx := context.Background()
	url := storetest.NewDB(b)
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	counter := &statementCounter{}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		b.Fatal(err)
	}
	cfg.ConnConfig.Tracer = counter
	workerPool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(workerPool.Close)

	st := store.NewStore(pool)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	// Two services on one database, as an API process and a worker process.
	apiSide := placement.New(st, placement.Config{})
	workerSide := placement.New(store.NewStore(workerPool), placement.Config{})
	client, err := worker.NewClient(pool, st, worker.Options{Work: true, Placement: workerSide, FetchPollInterval: 200 * time.Millisecond, Logger: logger})
	if err != nil {
		b.Fatal(err)
	}
	apiSide.UseQueue(client)
	if err := client.Start(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		stopCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		_ = client.Stop(stopCtx)
	})
	srv, err := app.NewAPI(app.APIConfig{
		Store: st, MasterKey: bytes.Repeat([]byte{1}, seal.KeySize), Identity: identity.Options{AllowRegistration: true},
		RateLimit: 1 << 30, Logger: logger, Instances: apiSide,
	})
	if err != nil {
		b.Fatal(err)
	}
	e := &plannerEnv{b: b, st: st, base: listen(b, srv), client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}}
	creds := map[string]string{"email": "bench@example.com", "password": "benchmark password"}
	var boot struct {
		Organization struct {
			ID string `json:"id"`
		} `json:"organization"`
	}
	e.post("/v1/auth/bootstrap", creds, &boot)
	e.orgID = boot.Organization.ID
	var sess struct {
		AccessToken string `json:"access_token"`
	}
	e.post("/v1/auth/login", creds, &sess)
	e.token = sess.AccessToken

	// 1,000 cx53-sized nodes (16 cores, 32 GiB, 320 GB) holding 0 to 7
	// instances each; the first b.N + 1 (cordoned, so never targets) hold
	// 100 small ones each (100m, 256 MiB, 2 GB) and are drained in turn.
	sources := min(b.N+1, 50)
	if _, err := pool.Exec(ctx, `INSERT INTO nodes (organization_id, name, provider, region, instance_type, vcpu, memory_mb, disk_gb, status)
		SELECT $1, 'node-' || lpad(g::text, 4, '0'), 'hetzner', 'fsn1', 'cx53', 16, 32768, 320,
		       CASE WHEN g <= $2 THEN 'cordoned' ELSE 'ready' END
		FROM generate_series(1, 1000) g`, e.orgID, sources); err != nil {
		b.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO instances (organization_id, node_id, name, template, cpu_millis, memory_mb, disk_gb)
		SELECT n.organization_id, n.id, 'gs-' || n.rn || '-' || k, 'valheim',
		       CASE WHEN n.rn <= $2 THEN 100 ELSE (ARRAY[250, 500, 1000])[k % 3 + 1] END,
		       CASE WHEN n.rn <= $2 THEN 256 ELSE (ARRAY[512, 1024, 2048])[k % 3 + 1] END,
		       CASE WHEN n.rn <= $2 THEN 2 ELSE (ARRAY[2, 5, 10])[k % 3 + 1] END
		FROM (SELECT id, organization_id, row_number() OVER (ORDER BY name) AS rn FROM nodes WHERE organization_id = $1) n,
		     generate_series(1, 100) k
		WHERE n.rn <= $2 OR k <= (n.rn * 7919) % 8`, e.orgID, sources); err != nil {
		b.Fatal(err)
	}
	if _, err := pool.Exec(ctx, "VACUUM ANALYZE nodes, instances"); err != nil {
		b.Fatal(err)
	}
	var sourceIDs []string
	rows, err := pool.Query(ctx, "SELECT id::text FROM nodes WHERE organization_id = $1 ORDER BY name LIMIT $2", e.orgID, sources)
	if err != nil {
		b.Fatal(err)
	}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			b.Fatal(err)
		}
		sourceIDs = append(sourceIDs, id)
	}
	if rows.Err() != nil {
		b.Fatal(rows.Err())
	}

	drain := func(nodeID string) (time.Duration, int64, migration) {
		before := counter.n.Load()
		start := time.Now()
		var m migration
		e.post("/v1/nodes/"+nodeID+"/drain", map[string]any{}, &m)
		for m.Status == "queued" || m.Status == "running" {
			time.Sleep(5 * time.Millisecond)
			e.get("/v1/migrations/"+m.ID, &m)
		}
		return time.Since(start), counter.n.Load() - before, m
	}
	drain(sourceIDs[len(sourceIDs)-1]) // warm-up: connections, plans, caches
	var ds []time.Duration
	var statements, movesDone int64
	var pickup, run time.Duration // created → started (the job's pickup), started → finished (the moves)
	b.ResetTimer()
	for i := 0; i < b.N && i < len(sourceIDs)-1; i++ {
		d, n, m := drain(sourceIDs[i])
		if m.Status != "succeeded" || m.MovesDone != 100 {
			b.Fatalf("drain %d ended %s with %d moves done", i, m.Status, m.MovesDone)
		}
		ds = append(ds, d)
		pickup += m.StartedAt.Sub(m.CreatedAt)
		run += m.FinishedAt.Sub(m.StartedAt)
		statements += n
		movesDone += int64(m.MovesDone)
	}
	b.StopTimer()
	percentiles(b, ds)
	b.ReportMetric(float64(statements)/float64(movesDone), "statements/move")
	var overfilled int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM nodes WHERE reserved_cpu_millis > vcpu * 1000 - 100 OR reserved_memory_mb > memory_mb - 512`).Scan(&overfilled); err != nil || overfilled != 0 {
		b.Fatalf("%d nodes overfilled (%v)", overfilled, err)
	}
	if len(ds) > 0 {
		b.ReportMetric(float64(pickup.Milliseconds())/float64(len(ds)), "pickup_ms")
		b.ReportMetric(float64(run.Microseconds())/float64(movesDone)/1000, "ms/move")
	}
	b.Logf("%d drains of 100 instances among 1,000 nodes: %s", len(ds), fmt.Sprint(ds))
}

type migration struct {
	ID         string    `json:"id"`
	Status     string    `json:"status"`
	MovesDone  int       `json:"moves_done"`
	CreatedAt  time.Time `json:"created_at"`
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at"`
}

// get decodes the answer of GET path into out.
func (e *plannerEnv) get(path string, out any) {
	req, _ := http.NewRequest("GET", e.base+path, nil)
	req.Header.Set("Authorization", "Bearer "+e.token)
	resp, err := e.client.Do(req)
	if err != nil {
		e.b.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		e.b.Fatalf("GET %s: %d %s %v", path, resp.StatusCode, raw, err)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		e.b.Fatal(err)
	}
}
