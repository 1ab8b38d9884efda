// Package providertest holds local fakes of cloud APIs for tests: they
// answer the calls shardform makes through the providers' client libraries
// (hcloud-go, cloudflare-go), on loopback.
package providertest

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// API is a running fake and the number of requests it answered.
type API struct {
	URL      string
	requests atomic.Int64
}

// Requests is how many requests the fake answered.
func (a *API) Requests() int64 { return a.requests.Load() }

func bearer(r *http.Request) string {
	return strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func start(t testing.TB, h http.HandlerFunc) *API {
	t.Helper()
	a := &API{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.requests.Add(1)
		h(w, r)
	}))
	t.Cleanup(srv.Close)
	a.URL = srv.URL
	return a
}

// Hetzner fakes the Hetzner Cloud API's GET /server_types: token is
// accepted, anything else gets Hetzner's 401 answer.
func Hetzner(t testing.TB, token string) *API {
	return start(t, func(w http.ResponseWriter, r *http.Request) {
		if bearer(r) != token {
			writeJSON(w, http.StatusUnauthorized, map[string]any{"error": map[string]any{"code": "unauthorized", "message": "unable to authenticate"}})
			return
		}
		if r.Method != http.MethodGet || r.URL.Path != "/server_types" {
			writeJSON(w, http.StatusNotFound, map[string]any{"error": map[string]any{"code": "not_found", "message": "not found"}})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{
			"server_types": []any{map[string]any{"id": 104, "name": "cpx22", "cores": 2, "memory": 4.0, "disk": 80}},
			"meta":         map[string]any{"pagination": map[string]any{"page": 1, "per_page": 1, "last_page": 1, "total_entries": 1}},
		})
	})
}

// Cloudflare fakes GET /user/tokens/verify: tokens maps a token to its
// status ("active", "disabled", "expired"); an unknown token gets
// Cloudflare's 401 "Invalid API Token".
func Cloudflare(t testing.TB, tokens map[string]string) *API {
	return start(t, func(w http.ResponseWriter, r *http.Request) {
		status, ok := tokens[bearer(r)]
		if !ok {
			writeJSON(w, http.StatusUnauthorized, map[string]any{"success": false, "messages": []any{},
				"errors": []any{map[string]any{"code": 1000, "message": "Invalid API Token"}}})
			return
		}
		if r.Method != http.MethodGet || r.URL.Path != "/user/tokens/verify" {
			writeJSON(w, http.StatusNotFound, map[string]any{"success": false, "messages": []any{},
				"errors": []any{map[string]any{"code": 7003, "message": "Could not route to " + r.URL.Path}}})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"success": true, "errors": []any{}, "messages": []any{},
			"result": map[string]any{"id": "f267e341f3dd4697bd3b9f71dd96247f", "status": status}})
	})
}
