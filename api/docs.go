package api

import (
	"embed"
	"log/slog"
	"net/http"

	"github.com/gofiber/fiber/v2"
)

// docsUI is Swagger UI from the swagger-ui-dist npm package pinned in
// web/package-lock.json (scripts/web-assets.sh copies it here), with a page
// of our own that points it at /openapi.json. Nothing is loaded from a CDN.
//
//go:embed docsui/index.html docsui/docs.js docsui/swagger-ui-bundle.js docsui/swagger-ui.css
var docsUI embed.FS

// docsCSP allows only this server's own files; Swagger UI sets inline
// styles and draws icons from data: URIs.
const docsCSP = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; font-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

func (s *Server) docsRoutes() {
	s.app.Get("/openapi.json", s.openAPIFile(func(d *openAPI) []byte { return d.json }, fiber.MIMEApplicationJSONCharsetUTF8))
	s.app.Get("/openapi.yaml", s.openAPIFile(func(d *openAPI) []byte { return d.yaml }, "application/yaml; charset=utf-8"))
	s.app.Get("/docs", docsFile("docsui/index.html", fiber.MIMETextHTMLCharsetUTF8))
	assets := map[string]fiber.Handler{
		"docs.js":              docsFile("docsui/docs.js", fiber.MIMEApplicationJavaScriptCharsetUTF8),
		"swagger-ui-bundle.js": docsFile("docsui/swagger-ui-bundle.js", fiber.MIMEApplicationJavaScriptCharsetUTF8),
		"swagger-ui.css":       docsFile("docsui/swagger-ui.css", "text/css; charset=utf-8"),
	}
	s.app.Get("/docs/:asset", func(c *fiber.Ctx) error {
		if h, ok := assets[c.Params("asset")]; ok {
			return h(c)
		}
		return fiber.ErrNotFound
	})
}

// openAPIFile answers the document, built on first use from the routes the
// server registered.
func (s *Server) openAPIFile(pick func(*openAPI) []byte, contentType string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		doc, err := s.openAPIDoc()
		if err != nil {
			s.log.ErrorContext(c.UserContext(), "openapi document", slog.Any("error", err))
			return err
		}
		c.Set(fiber.HeaderContentType, contentType)
		c.Set(fiber.HeaderCacheControl, "no-cache")
		return c.Send(pick(doc))
	}
}

func docsFile(name, contentType string) fiber.Handler {
	body, err := docsUI.ReadFile(name)
	return func(c *fiber.Ctx) error {
		if err != nil {
			return err // only if the embed list above and the files disagree
		}
		c.Set(fiber.HeaderContentType, contentType)
		c.Set("Content-Security-Policy", docsCSP)
		c.Set("X-Content-Type-Options", "nosniff")
		c.Set(fiber.HeaderCacheControl, "public, max-age=3600")
		return c.Status(http.StatusOK).Send(body)
	}
}
