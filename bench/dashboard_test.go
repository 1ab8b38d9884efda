package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shardform/shardform/identity"
	"github.com/shardform/shardform/internal/app"
	"github.com/shardform/shardform/providers"
	"github.com/shardform/shardform/provision"
	"github.com/shardform/shardform/seal"
	"github.com/shardform/shardform/store"
	"github.com/shardform/shardform/store/storetest"
)

// BenchmarkDashboardPages is the latency of the dashboard's nodes page and
// provisioning list for an organization with 10,000 nodes and 10,000
// provision requests (50 rows a page), signed in with the session cookies
// over loopback: each page is three in-process /v1 calls (whoami, the
// organizations, the list), each authenticated and rate limited, then the
// template. p50 and p99 are per page (target: p99 under 50 ms).
func BenchmarkDashboardPages(b *testing.B) {
	ctx := context.Background()
	pool := storetest.NewPool(b)
	st := store.NewStore(pool)
	key := bytes.Repeat([]byte{1}, seal.KeySize)
	sealer, err := seal.New(key)
	if err != nil {
		b.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	// Listing needs no Terraform: no runner.
	prov := provision.New(st, sealer, providers.NewRegistry(providers.Local{}), nil, time.Now, logger)
	srv, err := app.NewAPI(app.APIConfig{Store: st, MasterKey: key, Identity: identity.Options{AllowRegistration: true},
		RateLimit: 1 << 30, Logger: logger, Provisioning: prov})
	if err != nil {
		b.Fatal(err)
	}
	base := listen(b, srv)
	creds := map[string]string{"email": "bench@example.com", "password": "benchmark password"}
	buf, _ := json.Marshal(creds)
	resp, err := http.Post(base+"/v1/auth/bootstrap", "application/json", bytes.NewReader(buf))
	if err != nil {
		b.Fatal(err)
	}
	var acct struct {
		Organization struct {
			ID string `json:"id"`
		} `json:"organization"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&acct)
	resp.Body.Close()

	start := time.Now()
	if _, err := pool.Exec(ctx, `INSERT INTO nodes (organization_id, name, provider, region, instance_type, vcpu, memory_mb, disk_gb, status, ipv4, reserved_cpu_millis, reserved_memory_mb, reserved_disk_gb, instance_count)
		SELECT $1, 'node-' || lpad(g::text, 5, '0'), 'hetzner', (ARRAY['fsn1', 'nbg1', 'hel1'])[g % 3 + 1], 'cx43', 8, 16384, 160,
		       CASE WHEN g % 50 = 0 THEN 'cordoned' ELSE 'ready' END, '10.0.' || (g / 256) || '.' || (g % 256),
		       (g % 8) * 1000, (g % 16) * 1024, (g % 160), g % 9
		FROM generate_series(1, 10000) g`, acct.Organization.ID); err != nil {
		b.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO provision_requests (organization_id, provider, region, instance_type, name, status)
		SELECT $1, 'hetzner', 'fsn1', 'cx43', 'req-' || lpad(g::text, 5, '0'), (ARRAY['pending', 'planned', 'applied', 'failed'])[g % 4 + 1]
		FROM generate_series(1, 10000) g`, acct.Organization.ID); err != nil {
		b.Fatal(err)
	}
	if _, err := pool.Exec(ctx, "VACUUM ANALYZE nodes, provision_requests"); err != nil {
		b.Fatal(err)
	}
	b.Logf("seeded 10,000 nodes and 10,000 provision requests in %v", time.Since(start).Round(time.Millisecond))

	// Sign in through the form, as a browser does.
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(path string) (int, []byte) {
		resp, err := client.Get(base + path)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, body
	}
	get("/login")
	u, _ := url.Parse(base)
	var csrf string
	for _, c := range jar.Cookies(u) {
		if c.Name == "sf_csrf" {
			csrf = c.Value
		}
	}
	form := url.Values{"email": {creds["email"]}, "password": {creds["password"]}, "_csrf": {csrf}}
	resp, err = client.PostForm(base+"/login", form)
	if err != nil || resp.StatusCode != http.StatusSeeOther {
		b.Fatalf("sign in: %v %v", err, resp)
	}
	resp.Body.Close()

	for _, page := range []struct{ name, path, want string }{
		{"nodes", "/nodes", "node-"},
		{"nodes_page_100", "/nodes?page=100", "<meter"},
		{"provision", "/provision", "req-"},
		{"provision_filtered", "/provision?status=applied", "req-"},
	} {
		b.Run(page.name, func(b *testing.B) {
			if status, body := get(page.path); status != 200 || !strings.Contains(string(body), page.want) {
				b.Fatalf("GET %s: %d %.300s", page.path, status, body)
			}
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for b.Loop() {
				t0 := time.Now()
				if status, _ := get(page.path); status != 200 {
					b.Fatalf("GET %s: %d", page.path, status)
				}
				lat = append(lat, time.Since(t0))
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
		})
	}
}
