package api

import (
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/gofiber/fiber/v2"

	"github.com/shardform/shardform/domain"
)

// localUnmatched marks a request that reached no route: it is logged and
// counted without a route pattern.
const localUnmatched = "unmatched"

// routeMatcher answers which methods a path is served with, so a request
// with the wrong method is told 405 and the methods that work instead of 404.
type routeMatcher struct {
	once   sync.Once
	routes []compiledRoute
}

type compiledRoute struct {
	method  string
	pattern string
	re      *regexp.Regexp
}

// compile turns Fiber's route patterns (":param", ":param?", "*", "+") into
// anchored regular expressions.
func compileRoute(method, pattern string) compiledRoute {
	var b strings.Builder
	b.WriteString("^")
	for _, seg := range strings.Split(strings.TrimPrefix(pattern, "/"), "/") {
		switch {
		case seg == "*":
			b.WriteString("(?:/.*)?")
		case seg == "+":
			b.WriteString("/.+")
		case strings.HasPrefix(seg, ":") && strings.HasSuffix(seg, "?"):
			b.WriteString("(?:/[^/]+)?")
		case strings.HasPrefix(seg, ":"):
			b.WriteString("/[^/]+")
		default:
			b.WriteString("/" + regexp.QuoteMeta(seg))
		}
	}
	b.WriteString("/?$")
	return compiledRoute{method: method, pattern: pattern, re: regexp.MustCompile(b.String())}
}

func (m *routeMatcher) load(app *fiber.App) {
	m.once.Do(func() {
		for _, r := range app.GetRoutes(true) {
			m.routes = append(m.routes, compileRoute(r.Method, r.Path))
		}
	})
}

// allowed is the methods path is served with (sorted) and the pattern of
// the first route that matched it.
func (m *routeMatcher) allowed(path string) (methods []string, pattern string) {
	for _, r := range m.routes {
		if r.re.MatchString(path) && !slices.Contains(methods, r.method) {
			methods = append(methods, r.method)
			if pattern == "" {
				pattern = r.pattern
			}
		}
	}
	slices.Sort(methods)
	return methods, pattern
}

// unmatched is the last handler: 405 with Allow when the path exists for
// other methods, else 404.
func (s *Server) unmatched(c *fiber.Ctx) error {
	c.Locals(localUnmatched, true)
	s.matcher.load(s.app)
	methods, pattern := s.matcher.allowed(c.Path())
	if len(methods) == 0 {
		return fiber.ErrNotFound
	}
	c.Set(fiber.HeaderAllow, strings.Join(methods, ", "))
	use := slices.DeleteFunc(slices.Clone(methods), func(m string) bool { return m == fiber.MethodHead })
	return &fiber.Error{Code: fiber.StatusMethodNotAllowed,
		Message: "method " + strings.Clone(c.Method()) + " not allowed on " + pattern + ": use " + strings.Join(use, " or ")}
}

// loggedPath is what the request log shows of a path that matched no
// route: segments that look like secrets are redacted and the whole is cut
// to 200 bytes. A matched request is logged by its route pattern instead.
func loggedPath(path string) string {
	segs := strings.Split(path, "/")
	for i, seg := range segs {
		// The secrets that can appear in a path (invite tokens) or be pasted
		// into one by mistake (refresh, API and other shardform_ tokens).
		for _, p := range [...]string{"sfi_", "sfr_", "shardform_"} {
			if strings.HasPrefix(seg, p) {
				segs[i] = p + "[redacted]"
			}
		}
	}
	out := strings.Join(segs, "/")
	return strings.Clone(domain.Truncate(out, 200))
}
