package api_test

import (
	"bytes"
	"context"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3filter"
)

// readmeCurl is one curl command of the README's walk-throughs.
type readmeCurl struct {
	line   int
	method string
	url    string
	body   string // the -d '...' argument, "" when there is none or it is not literal
}

var (
	curlURL    = regexp.MustCompile(`"?\$B(/[^\s"']*)"?`)
	curlMethod = regexp.MustCompile(`-X\s+([A-Z]+)`)
	curlBody   = regexp.MustCompile(`-d\s+'([^']*(?:'"\$[A-Za-z_{}]+"'[^']*)*)'`)
	shellVar   = regexp.MustCompile(`\$\{[^}]*\}|\$[A-Za-z_][A-Za-z0-9_]*`)
)

// readmeCurls reads the shell blocks of the README and returns every curl
// command that talks to the server ($B), continuation lines joined.
func readmeCurls(t *testing.T) []readmeCurl {
	t.Helper()
	raw, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var out []readmeCurl
	inBlock := false
	var cmd strings.Builder
	start := 0
	flush := func() {
		for _, part := range strings.Split(cmd.String(), "|") {
			if !strings.Contains(part, "curl ") {
				continue
			}
			u := curlURL.FindStringSubmatch(part)
			if u == nil {
				continue
			}
			c := readmeCurl{line: start, url: u[1], method: "GET"}
			if m := curlBody.FindStringSubmatch(part); m != nil {
				c.body = m[1]
				c.method = "POST"
			} else if strings.Contains(part, "-d @-") {
				c.method = "POST"
			}
			if m := curlMethod.FindStringSubmatch(part); m != nil {
				c.method = m[1]
			}
			out = append(out, c)
		}
		cmd.Reset()
	}
	for i, line := range strings.Split(string(raw), "\n") {
		switch {
		case strings.HasPrefix(line, "```sh"):
			inBlock = true
			continue
		case strings.HasPrefix(line, "```"):
			inBlock = false
			continue
		case !inBlock:
			continue
		}
		code, _, _ := strings.Cut(line, "  # ")
		if strings.HasPrefix(strings.TrimSpace(code), "#") {
			continue
		}
		if cmd.Len() == 0 {
			start = i + 1
		}
		if rest, ok := strings.CutSuffix(strings.TrimRight(code, " "), `\`); ok {
			cmd.WriteString(rest + " ")
			continue
		}
		cmd.WriteString(code)
		flush()
	}
	return out
}

// TestREADMECurlExamples: every curl command in the README names a
// documented operation, and every literal JSON body validates against that
// operation's request schema (shell variables stand for a UUID or string).
func TestREADMECurlExamples(t *testing.T) {
	t.Parallel()
	b := fullServer(t)
	router, err := b.contract.load(b.srv)
	if err != nil {
		t.Fatal(err)
	}
	const id = "0b5e2c1a-8f3d-4c6e-9a7b-1d2e3f4a5b6c"
	curls := readmeCurls(t)
	bodies := 0
	for _, c := range curls {
		target, _, _ := strings.Cut(c.url, "?")
		target = shellVar.ReplaceAllString(target, id)
		if strings.HasPrefix(target, "/riverui/") {
			continue // River UI's own API, mounted beside ours: not in our document
		}
		hr := httptest.NewRequest(c.method, "http://example.com"+target, nil)
		route, params, err := router.FindRoute(hr)
		if err != nil {
			t.Errorf("README line %d: %s %s is not a documented operation: %v", c.line, c.method, c.url, err)
			continue
		}
		if c.body == "" {
			continue
		}
		bodies++
		body := strings.NewReplacer(`'"`, "", `"'`, "").Replace(c.body)
		body = shellVar.ReplaceAllString(body, id)
		hr = httptest.NewRequest(c.method, "http://example.com"+target, bytes.NewBufferString(body))
		hr.Header.Set("Content-Type", "application/json")
		in := &openapi3filter.RequestValidationInput{
			Request: hr, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, ExcludeRequestQueryParams: true, MultiError: true},
		}
		if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
			t.Errorf("README line %d: %s %s body %s does not match the request schema: %v", c.line, c.method, c.url, body, err)
		}
	}
	// The parser must keep finding the walk-throughs: a README rewrite that
	// it cannot read fails here rather than passing with nothing checked.
	if len(curls) < 30 || bodies < 10 {
		t.Errorf("found %d curl commands and %d literal bodies in the README; want at least 30 and 10", len(curls), bodies)
	}
}
