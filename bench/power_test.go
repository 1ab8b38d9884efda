package bench

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/shardform/shardform/credentials"
	"github.com/shardform/shardform/identity"
	"github.com/shardform/shardform/internal/app"
	"github.com/shardform/shardform/internal/fake/awsfake"
	"github.com/shardform/shardform/internal/fake/hcloudfake"
	"github.com/shardform/shardform/nodeops"
	"github.com/shardform/shardform/providers"
	"github.com/shardform/shardform/seal"
	"github.com/shardform/shardform/store"
	"github.com/shardform/shardform/store/storetest"
	"github.com/shardform/shardform/worker"
)

// powerPoll is how often the cloud clients poll the fakes, which answer at
// once: the figures are shardform's own round trip (API, queue, job, the
// cloud calls, the record), not the wait for a real machine.
const powerPoll = 10 * time.Millisecond

// BenchmarkPowerRoundTrip measures 100 power actions on one node (stop,
// start, stop, ...), one at a time, from the 202 answer of
// POST /v1/nodes/{id}/power/{stop|start} to GET /v1/nodes/{id}/actions
// answering it succeeded (polled every 2 ms), against each cloud's fake
// through its real client library (hcloud-go, the AWS SDK for Go v2) and
// for the local driver.
func BenchmarkPowerRoundTrip(b *testing.B) {
	for _, cloud := range []string{"hetzner", "aws", "local"} {
		b.Run(cloud, func(b *testing.B) {
			for range b.N {
				benchPower(b, cloud)
			}
		})
	}
}

func benchPower(b *testing.B, cloud string) {
	const n = 100
	b.StopTimer()
	ctx := context.Background()
	pool := storetest.NewPool(b)
	st := store.NewStore(pool)
	key := bytes.Repeat([]byte{7}, seal.KeySize)
	sealer, _ := seal.New(key)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))

	hz := hcloudfake.New(b, hcloudfake.Options{})
	ec2 := awsfake.New(b)
	ec2.Allow("AKIABENCHPOWER000001", "bench-secret")
	ops := nodeops.New(st, sealer, nodeops.Config{Logger: quiet, Clouds: map[string]nodeops.Power{
		"hetzner": providers.HetznerPower{Endpoint: hz.URL, PollInterval: powerPoll},
		"aws":     providers.AWSPower{Endpoint: ec2.URL, PollInterval: powerPoll},
	}})
	// As `shardform serve` configures River (cmd/shardform/main.go).
	rc, err := worker.NewClient(pool, st, worker.Options{Work: true, NodeOps: ops, FetchPollInterval: 200 * time.Millisecond, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	ops.UseQueue(rc)
	if err := rc.Start(ctx); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = rc.Stop(context.Background()) }()
	srv, err := app.NewAPI(app.APIConfig{Store: st, MasterKey: key, Identity: identity.Options{AllowRegistration: true},
		RateLimit: 1 << 30, Logger: quiet, NodeOps: ops, Credentials: credentials.New(st, sealer, nil)})
	if err != nil {
		b.Fatal(err)
	}
	e := &env{b: b, base: listen(b, srv), pool: pool, client: &http.Client{}}
	login := map[string]string{"email": "bench@example.com", "password": "benchmark password"}
	var boot struct {
		Organization struct {
			ID string `json:"id"`
		} `json:"organization"`
	}
	e.call("POST", "/v1/auth/bootstrap", login, &boot)
	var sess struct {
		AccessToken string `json:"access_token"`
	}
	e.call("POST", "/v1/auth/login", login, &sess)
	e.token = sess.AccessToken

	region, serverID := "local", ""
	switch cloud {
	case "hetzner":
		e.call("POST", "/v1/credentials", map[string]any{"name": "hz", "provider": "hetzner", "secret": map[string]string{"token": hcloudfake.Token}}, nil)
		region, serverID = "fsn1", strconv.FormatInt(hz.AddServer("bench-1"), 10)
	case "aws":
		e.call("POST", "/v1/credentials", map[string]any{"name": "aws", "provider": "aws",
			"secret": map[string]string{"access_key_id": "AKIABENCHPOWER000001", "secret_access_key": "bench-secret"}}, nil)
		region = "eu-central-1"
		serverID = ec2.AddInstance(region, "t3.small")
	}
	var node string
	if err := pool.QueryRow(ctx, `INSERT INTO nodes (organization_id, name, provider, region, instance_type, vcpu, memory_mb, disk_gb, server_id)
		VALUES ($1, 'bench-1', $2, $3, 'bench', 2, 4096, 40, $4) RETURNING id`, boot.Organization.ID, cloud, region, serverID).Scan(&node); err != nil {
		b.Fatal(err)
	}

	var rtt []time.Duration
	b.StartTimer()
	for i := range n {
		kind := "stop"
		if i%2 == 1 {
			kind = "start"
		}
		var a nodeops.Action
		e.call("POST", "/v1/nodes/"+node+"/power/"+kind, nil, &a)
		answered := time.Now()
		for {
			var page struct {
				Data []nodeops.Action `json:"data"`
			}
			e.call("GET", "/v1/nodes/"+node+"/actions?limit=1", nil, &page)
			if len(page.Data) == 1 && page.Data[0].ID == a.ID && page.Data[0].Status == nodeops.StatusSucceeded {
				break
			}
			if len(page.Data) == 1 && page.Data[0].Status == nodeops.StatusFailed {
				b.Fatalf("%s failed: %s", kind, page.Data[0].Error)
			}
			if time.Since(answered) > time.Minute {
				b.Fatalf("%s not done after a minute", kind)
			}
			time.Sleep(2 * time.Millisecond)
		}
		rtt = append(rtt, time.Since(answered))
	}
	b.StopTimer()
	report(b, "round-trip", rtt)
	var pickup, work []time.Duration
	rows, err := pool.Query(ctx, `SELECT j.attempted_at - a.created_at, a.finished_at - j.attempted_at
		FROM node_actions a JOIN river_job j ON j.id = a.job_id ORDER BY a.created_at`)
	if err != nil {
		b.Fatal(err)
	}
	for rows.Next() {
		var p, w time.Duration
		if err := rows.Scan(&p, &w); err != nil {
			b.Fatal(err)
		}
		if p > 50*time.Millisecond {
			b.Logf("action %d: pickup %v", len(pickup), p)
		}
		pickup, work = append(pickup, p), append(work, w)
	}
	if err := rows.Err(); err != nil {
		b.Fatal(err)
	}
	report(b, "pickup", pickup)
	report(b, "job", work)
	switch cloud {
	case "hetzner":
		b.Logf("hcloud fake: %d requests for %d actions (%v)", hz.Requests.Load(), n, hz.ActionCalls())
	case "aws":
		b.Logf("EC2 fake: %v for %d actions", ec2.Calls(), n)
	}
}
