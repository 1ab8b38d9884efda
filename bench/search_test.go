package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shardform/shardform/dns"
	"github.com/shardform/shardform/domain"
	"github.com/shardform/shardform/placement"
	"github.com/shardform/shardform/providers"
	"github.com/shardform/shardform/provision"
	"github.com/shardform/shardform/seal"
	"github.com/shardform/shardform/search"
	"github.com/shardform/shardform/store"
	"github.com/shardform/shardform/store/storetest"
)

// searchNodes is the number of nodes of the benchmark's organization.
const searchNodes = 100_000

// BenchmarkSearchNodes is POST /v1/nodes/search's work (search.Service:
// the count and the page's ids, the page's rows with their DNS names) over an
// organization of 100,000 nodes (bulk-inserted with COPY, with an A record
// each for every tenth), beside another organization's 10,000. Each
// sub-benchmark reports its median and 99th-percentile latency; the
// substring searches' plans are checked (EXPLAIN) to use the trigram
// indexes of migration 00024.
func BenchmarkSearchNodes(b *testing.B) {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, storetest.NewDB(b))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	org := uuid.New()
	stranger := uuid.New()
	for _, o := range []uuid.UUID{org, stranger} {
		if _, err := pool.Exec(ctx, `INSERT INTO organizations (id, name) VALUES ($1, $2)`, o, o.String()[:8]); err != nil {
			b.Fatal(err)
		}
	}
	start := time.Now()
	regions := []string{"fsn1", "nbg1", "hel1", "ash", "hil", "sin", "eu-central-1", "us-east-1", "eu-west-1", "ap-south-1"}
	types := []string{"cx22", "cx32", "cx42", "cpx31", "t3.medium", "t3.large"}
	statuses := []string{"ready", "ready", "ready", "ready", "cordoned", "maintenance", "unreachable"} // 7: coprime with the regions' 10
	copyNodes := func(o uuid.UUID, n int) {
		rows := make([][]any, 0, n)
		base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		for i := range n {
			rows = append(rows, []any{o, fmt.Sprintf("game-%06d-%s", i, regions[i%len(regions)]), "hetzner", regions[i%len(regions)], types[i%len(types)],
				int32(2 << (i % 4)), int32(4096 << (i % 4)), int32(40 << (i % 4)), statuses[i%len(statuses)],
				map[string]string{"game": []string{"valheim", "minecraft", "rust", "ark"}[i%4]},
				fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255), base.Add(time.Duration(i) * time.Second)})
		}
		_, err := pool.CopyFrom(ctx, pgx.Identifier{"nodes"}, []string{"organization_id", "name", "provider", "region", "instance_type",
			"vcpu", "memory_mb", "disk_gb", "status", "labels", "ipv4", "created_at"}, pgx.CopyFromRows(rows))
		if err != nil {
			b.Fatal(err)
		}
	}
	copyNodes(org, searchNodes)
	copyNodes(stranger, searchNodes/10)
	if _, err := pool.Exec(ctx, `INSERT INTO dns_records (organization_id, zone_id, zone_name, type, name, content, node_id, status)
		SELECT organization_id, 'z1', 'example.com', 'A', name || '.example.com', ipv4, id, 'synced' FROM nodes
		WHERE organization_id = $1 AND right(split_part(name, '-', 2), 1) = '0'`, org); err != nil {
		b.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `VACUUM ANALYZE nodes`); err != nil {
		b.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `VACUUM ANALYZE dns_records`); err != nil {
		b.Fatal(err)
	}
	b.Logf("loaded %d nodes in %s", searchNodes*11/10, time.Since(start).Round(time.Millisecond))

	st := store.NewStore(pool)
	sealer, err := seal.New(bytes.Repeat([]byte{9}, seal.KeySize))
	if err != nil {
		b.Fatal(err)
	}
	prov := provision.New(st, sealer, providers.NewRegistry(providers.Local{}), nil, time.Now, slog.New(slog.NewTextHandler(io.Discard, nil)))
	svc := search.New(pool, search.Sources{Provisioning: prov, Instances: placement.New(st, placement.Config{}), DNS: dns.New(st, nil, dns.Options{})})
	p := &domain.Principal{UserID: uuid.New(), OrgID: org, Role: domain.RoleOwner, HasOrg: true,
		Perms: domain.NewPermissionSet(domain.RolePermissions(domain.RoleOwner))}

	cases := []struct {
		name, body string
		index      string // an index the plan must use (EXPLAIN), if any
	}{
		{"filter_region_status", `{"filters":{"region":["hel1"],"status":["cordoned","maintenance"]}}`, ""},
		{"filter_name", `{"filters":{"name":["game-054321-nbg1"]}}`, ""},
		{"filter_labels_sorted", `{"filters":{"labels":["game=rust"],"instance_type":["cx42"]},"sortBy":"name","sortDirection":"desc"}`, ""},
		{"range_created_at", `{"greaterThan":{"created_at":"2026-01-01T10:00:00Z"},"lessThan":{"created_at":"2026-01-01T11:00:00Z"},"sortBy":"created_at"}`, ""},
		{"substring_name", `{"search":{"name":["4321"]}}`, "nodes_name_trgm_idx"},
		{"substring_name_two", `{"search":{"name":["game-0999","game-0111"]}}`, "nodes_name_trgm_idx"},
		{"substring_fqdn", `{"search":{"fqdn":["0770-FSN"]}}`, "dns_records_name_trgm_idx"},
		{"substring_name_extend", `{"search":{"name":["-05"]},"extend":["dns_records","instances"],"limit":50}`, ""},
	}
	for _, tc := range cases {
		var body search.Body
		if err := json.Unmarshal([]byte(tc.body), &body); err != nil {
			b.Fatal(err)
		}
		b.Run(tc.name, func(b *testing.B) {
			res, err := svc.Search(ctx, p, "nodes", body)
			if err != nil {
				b.Fatal(err)
			}
			q, err := search.Parse(searchResource(b, svc), body)
			if err != nil {
				b.Fatal(err)
			}
			if os.Getenv("SHARDFORM_EXPLAIN") != "" {
				for _, sql := range explainable(q, org) {
					b.Logf("%s %s:\n%s", tc.name, sql.what, explain(b, pool, "(ANALYZE, BUFFERS) "+sql.text, sql.args))
				}
			}
			if tc.index != "" {
				for _, sql := range explainable(q, org) {
					plan := explain(b, pool, sql.text, sql.args)
					if !strings.Contains(plan, tc.index) {
						b.Fatalf("%s does not use %s:\n%s", sql.what, tc.index, plan)
					}
				}
			}
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				t0 := time.Now()
				if _, err := svc.Search(ctx, p, "nodes", body); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
			}
			b.StopTimer()
			b.ReportMetric(float64(res.Total), "matches")
			percentiles(b, lat)
		})
	}
}

func searchResource(b *testing.B, svc *search.Service) *search.Resource {
	for _, r := range svc.Resources() {
		if r.Name == "nodes" {
			return r
		}
	}
	b.Fatal("no nodes resource")
	return nil
}

type explained struct {
	what, text string
	args       []any
}

func explainable(q search.Query, org uuid.UUID) []explained {
	c, cargs := q.CountSQL(org)
	i, iargs := q.IDsSQL(org)
	return []explained{{"count", c, cargs}, {"ids", i, iargs}}
}

func explain(b *testing.B, pool *pgxpool.Pool, sql string, args []any) string {
	rows, err := pool.Query(context.Background(), "EXPLAIN "+sql, args...)
	if err != nil {
		b.Fatal(err)
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		b.Fatal(err)
	}
	return strings.Join(lines, "\n")
}
