package api_test

import (
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"riverqueue.com/riverui"

	"github.com/shardform/shardform/store"
	"github.com/shardform/shardform/worker"
)

// riverUIHandler is River UI over this test's database (nil unless on).
func riverUIHandler(t *testing.T, pool *pgxpool.Pool, on bool) http.Handler {
	t.Helper()
	if !on {
		return nil
	}
	client, err := worker.NewClient(pool, store.NewStore(pool), worker.Options{})
	if err != nil {
		t.Fatal(err)
	}
	h, err := riverui.NewHandler(&riverui.HandlerOpts{Endpoints: riverui.NewEndpoints(client, nil),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Prefix: "/riverui"})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	return h
}

// TestRiverUI: River UI and its API answer a platform administrator's
// session; an administrator's API token, another user and no credential
// get the 404 of a path that does not exist.
func TestRiverUI(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{riverUI: true, provisioning: true, externalWorkers: true})
	admin := b.bootstrap("ops@example.com")
	id := b.expect(req{method: "POST", path: "/v1/provision", token: admin.access, body: localBody("web-1")}, 201).str("id")
	b.expect(req{method: "POST", path: "/v1/provision/" + id + "/plan", token: admin.access}, 202) // one job waiting

	jobs := b.expect(req{method: "GET", path: "/riverui/api/jobs?state=available&limit=10", token: admin.access, noContract: true}, 200)
	if !strings.Contains(string(jobs.Raw), `"kind":"provision_plan"`) {
		t.Errorf("River UI's job list: %s", jobs.Raw)
	}
	page := b.expect(req{method: "GET", path: "/riverui/", token: admin.access, noContract: true}, 200)
	if !strings.Contains(strings.ToLower(string(page.Raw)), "<html") {
		t.Errorf("River UI's page: %.300s", page.Raw)
	}
	other := b.register("other@example.com")
	for _, tok := range []string{b.apiToken(admin, "provision:read"), other.access, ""} {
		r := b.expect(req{method: "GET", path: "/riverui/api/jobs?state=available", token: tok, noContract: true}, 404)
		if r.errMsg() != "no such endpoint" {
			t.Errorf("refused with %s", r.Raw)
		}
	}
}
