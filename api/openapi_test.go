package api_test

import (
	"context"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	cffake "github.com/shardform/shardform/internal/fake/cloudflare"
)

// fullServer has every optional part configured, so every route is served.
func fullServer(t *testing.T) *bundle {
	t.Helper()
	return setup(t, setupOpts{provisioning: true, ssh: true, nodeOps: true, nodeOpsNoWorker: true, cloudflare: cffake.New(t).URL, drainQueue: true})
}

func loadDocument(t *testing.T, b *bundle, path string) *openapi3.T {
	t.Helper()
	r := b.expect(req{method: "GET", path: path}, 200)
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(r.Raw)
	if err != nil {
		t.Fatalf("%s does not load: %v", path, err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("%s is not a valid OpenAPI document: %v", path, err)
	}
	return doc
}

func TestOpenAPIDocument(t *testing.T) {
	t.Parallel()
	b := fullServer(t)
	for _, path := range []string{"/openapi.json", "/openapi.yaml"} {
		t.Run(path, func(t *testing.T) {
			doc := loadDocument(t, b, path)
			if doc.OpenAPI != "3.1.0" {
				t.Errorf("openapi = %q, want 3.1.0", doc.OpenAPI)
			}
			for _, name := range []string{"bearerJWT", "apiToken", "apiKey"} {
				if doc.Components.SecuritySchemes[name] == nil {
					t.Errorf("security scheme %s missing", name)
				}
			}
		})
	}
}

// TestOpenAPICoversEveryRoute walks Fiber's route table: every route is in
// the document and every documented operation has a route.
func TestOpenAPICoversEveryRoute(t *testing.T) {
	t.Parallel()
	b := fullServer(t)
	doc := loadDocument(t, b, "/openapi.json")
	documented := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented[method+" "+path] = true
		}
	}
	routed := map[string]bool{}
	for _, r := range b.srv.App().GetRoutes(true) {
		if r.Method == "HEAD" {
			continue // Fiber adds HEAD beside every GET
		}
		routed[r.Method+" "+openAPIPath(r.Path)] = true
	}
	var missing, extra []string
	for k := range routed {
		if !documented[k] {
			missing = append(missing, k)
		}
	}
	for k := range documented {
		if !routed[k] {
			extra = append(extra, k)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing) > 0 {
		t.Errorf("routes missing from the OpenAPI document:\n  %s", strings.Join(missing, "\n  "))
	}
	if len(extra) > 0 {
		t.Errorf("documented operations without a route:\n  %s", strings.Join(extra, "\n  "))
	}
	if len(routed) < 90 {
		t.Errorf("only %d routes found: is the server fully configured?", len(routed))
	}
	// Every authenticated operation says which credentials it takes and
	// every /v1 operation documents its error answers.
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			if op.Security == nil {
				t.Errorf("%s %s: no security requirement (public operations list none explicitly)", method, path)
			}
			if strings.HasPrefix(path, "/v1/") && op.Responses.Value("429") == nil {
				t.Errorf("%s %s: 429 not documented", method, path)
			}
			if slices.Contains([]string{"POST", "PUT", "PATCH"}, method) && op.RequestBody != nil && op.Responses.Value("400") == nil {
				t.Errorf("%s %s: takes a body but documents no 400", method, path)
			}
		}
	}
}

// openAPIPath turns Fiber's /v1/nodes/:id into OpenAPI's /v1/nodes/{id}.
func openAPIPath(p string) string {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		if strings.HasPrefix(s, ":") {
			parts[i] = "{" + s[1:] + "}"
		}
	}
	return strings.Join(parts, "/")
}
