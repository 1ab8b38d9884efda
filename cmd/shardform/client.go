package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// apiClient is what every client command talks to the API with: the base
// URL, the bearer token, the organization (X-Organization-ID) and an
// http.Client. A non-2xx answer becomes an *apiError.
type apiClient struct {
	base, token, org string
	http             *http.Client
}

// callTimeout bounds one request (a log stream has none).
const callTimeout = 60 * time.Second

// errNoServer: no --url, SHARDFORM_URL or config file names the server.
var errNoServer = errors.New("no server: pass --url, set SHARDFORM_URL or run shardform login --url URL")

// client is the API client of this command line: --url, else
// SHARDFORM_URL, else the config file; the token from SHARDFORM_TOKEN,
// else the config file; the organization from --org, else the file.
func (c *cli) client() (*apiClient, error) {
	cfg, err := loadCLIConfig(c.env)
	if err != nil {
		return nil, err
	}
	return &apiClient{
		base:  strings.TrimRight(cmp.Or(c.url, c.env("SHARDFORM_URL"), cfg.URL), "/"),
		token: cmp.Or(c.env("SHARDFORM_TOKEN"), cfg.Token),
		org:   cmp.Or(c.org, cfg.OrganizationID),
		http:  c.http,
	}, nil
}

// authed is client() for commands that need a server and a token.
func (c *cli) authed() (*apiClient, error) {
	api, err := c.client()
	if err != nil {
		return nil, err
	}
	if api.base == "" {
		return nil, errNoServer
	}
	if api.token == "" {
		return nil, &apiError{Status: http.StatusUnauthorized, Message: "not logged in: run shardform login (or set SHARDFORM_TOKEN)"}
	}
	return api, nil
}

// request builds a request; body is JSON-encoded unless nil.
func (a *apiClient) request(ctx context.Context, method, path string, body any) (*http.Request, error) {
	if a.base == "" {
		return nil, errNoServer
	}
	var rd io.Reader
	if body != nil {
		buf, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(buf)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	if a.org != "" {
		req.Header.Set("X-Organization-ID", a.org)
	}
	return req, nil
}

// call sends one request and answers the body of a 2xx answer as sent
// (for --output json), decoded into out when out is not nil.
func (a *apiClient) call(ctx context.Context, method, path string, body, out any) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	req, err := a.request(ctx, method, path, body)
	if err != nil {
		return nil, err
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the API: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return nil, fmt.Errorf("read the API's answer: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		return nil, errorOf(resp.StatusCode, raw)
	}
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			return nil, fmt.Errorf("unreadable answer from the API: %w", err)
		}
	}
	return raw, nil
}

// stream sends a GET and answers the open 2xx response (an event stream).
func (a *apiClient) stream(ctx context.Context, path string) (*http.Response, error) {
	req, err := a.request(ctx, http.MethodGet, path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := a.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the API: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return nil, errorOf(resp.StatusCode, raw)
	}
	return resp, nil
}

// errorOf decodes {"error": "..."} (else the body's text) into an *apiError.
func errorOf(status int, raw []byte) *apiError {
	var e struct {
		Error string `json:"error"`
	}
	msg := strings.TrimSpace(string(raw))
	if json.Unmarshal(raw, &e) == nil && e.Error != "" {
		msg = e.Error
	}
	msg = oneLine(msg)
	if len(msg) > 300 {
		msg = msg[:300] + "…"
	}
	if msg == "" {
		msg = http.StatusText(status)
	}
	return &apiError{Status: status, Message: msg}
}
