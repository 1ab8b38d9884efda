package api_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDocsServed: /docs and its files come from this server with a CSP that
// allows nothing else, and the page loads this server's document.
func TestDocsServed(t *testing.T) {
	t.Parallel()
	b := fullServer(t)
	cases := []struct {
		path, contentType, contains string
	}{
		{"/docs", "text/html", `<script src="/docs/swagger-ui-bundle.js">`},
		{"/docs/docs.js", "javascript", `url: "/openapi.json"`},
		{"/docs/swagger-ui-bundle.js", "javascript", "SwaggerUIBundle"},
		{"/docs/swagger-ui.css", "text/css", ".swagger-ui"},
	}
	for _, c := range cases {
		r := b.expect(req{method: "GET", path: c.path}, 200)
		if ct := r.Header.Get("Content-Type"); !strings.Contains(ct, c.contentType) {
			t.Errorf("%s: Content-Type %q, want %s", c.path, ct, c.contentType)
		}
		csp := r.Header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "script-src 'self'") {
			t.Errorf("%s: Content-Security-Policy %q does not restrict scripts to this server", c.path, csp)
		}
		if !bytes.Contains(r.Raw, []byte(c.contains)) {
			t.Errorf("%s: body does not contain %q", c.path, c.contains)
		}
		if bytes.Contains(r.Raw, []byte("//cdn.")) || bytes.Contains(r.Raw, []byte("unpkg.com")) {
			t.Errorf("%s refers to a CDN", c.path)
		}
	}
	b.expect(req{method: "GET", path: "/docs/package.json"}, 404)
}

// TestDocsAssetsMatchNPMPackage: the embedded Swagger UI files are the ones
// of the swagger-ui-dist version pinned in web/package-lock.json (.ci/run
// installs it with npm ci; scripts/web-assets.sh copies it).
func TestDocsAssetsMatchNPMPackage(t *testing.T) {
	t.Parallel()
	src := filepath.Join("..", "web", "node_modules", "swagger-ui-dist")
	if _, err := os.Stat(src); err != nil {
		t.Skipf("web/node_modules is not installed (run `cd web && npm ci`): %v", err)
	}
	for _, f := range []string{"swagger-ui-bundle.js", "swagger-ui.css", "LICENSE"} {
		want, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join("docsui", f))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("api/docsui/%s differs from the npm package's: run scripts/web-assets.sh", f)
		}
	}
}
