// Package bench measures shardform end to end: a real API server on a
// loopback port, real Postgres, real HTTP clients. Run with `make bench`.
package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/shardform/shardform/identity"
	"github.com/shardform/shardform/internal/app"
	"github.com/shardform/shardform/seal"
	"github.com/shardform/shardform/store"
	"github.com/shardform/shardform/store/storetest"
)

// BenchmarkUsersMeAPIToken is the authenticated request rate of
// GET /v1/users/me with an API token over loopback: every request resolves
// the token (one query), counts it in the shared Postgres rate limiter (one
// upsert) and reads the user and their organizations.
func BenchmarkUsersMeAPIToken(b *testing.B) {
	pool := storetest.NewPool(b)
	srv, err := app.NewAPI(app.APIConfig{
		Store: store.NewStore(pool), MasterKey: bytes.Repeat([]byte{1}, seal.KeySize),
		Identity:  identity.Options{AllowRegistration: true},
		RateLimit: 1 << 30, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		b.Fatal(err)
	}
	base := listen(b, srv)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

	post := func(path, bearer string, body any, out any) {
		buf, _ := json.Marshal(body)
		req, _ := http.NewRequest("POST", base+path, bytes.NewReader(buf))
		req.Header.Set("Content-Type", "application/json")
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode >= 300 {
			raw, _ := io.ReadAll(resp.Body)
			b.Fatalf("POST %s: %d %s", path, resp.StatusCode, raw)
		}
		if out != nil {
			if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
				b.Fatal(err)
			}
		}
	}
	creds := map[string]string{"email": "bench@example.com", "password": "benchmark password"}
	post("/v1/auth/bootstrap", "", creds, nil)
	var sess struct {
		AccessToken string `json:"access_token"`
	}
	post("/v1/auth/login", "", creds, &sess)
	var tok struct {
		Token string `json:"token"`
	}
	post("/v1/api-tokens", sess.AccessToken, map[string]any{"name": "bench", "scopes": []string{"nodes:read"}}, &tok)

	b.SetParallelism(8) // 8 × GOMAXPROCS concurrent clients
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest("GET", base+"/v1/users/me", nil)
			req.Header.Set("X-API-Key", tok.Token)
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Error(fmt.Sprintf("status %d", resp.StatusCode))
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
}
