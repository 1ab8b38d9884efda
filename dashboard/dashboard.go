// Package dashboard is shardform's web dashboard: server-rendered pages
// (html/template) with htmx for the live parts, served at / by the API
// server. Every page gets its data by calling the /v1 API in process with
// the session's own access token, so the API's authentication, permission
// checks, validation, rate limits and audit log apply to the dashboard
// exactly as to the CLI: there is no second path to the data.
package dashboard

import (
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"
)

//go:embed templates/*.html
var templateFS embed.FS

// assetFS holds the files served under /assets/: htmx (copied from the
// npm package pinned in web/package-lock.json by scripts/web-assets.sh),
// the dashboard's own script and style sheet.
//
//go:embed assets
var assetFS embed.FS

// csp allows this server's own files only: no inline script or style, no
// other origin, no framing.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

// Config is what New needs.
type Config struct {
	// API answers the /v1 API in process (the API server's Fiber handler).
	API    fasthttp.RequestHandler
	Logger *slog.Logger
	Now    func() time.Time
	// Has says which parts of the API this server serves (the menu shows
	// only those).
	Has Features
}

// Features are the optional parts of the API a server serves.
type Features struct {
	Provisioning, Planner, SSH, DNS bool
}

// Dashboard is the web dashboard.
type Dashboard struct {
	cfg   Config
	log   *slog.Logger
	pages map[string]*template.Template
}

// Page is one dashboard route, for the API's OpenAPI document.
type Page struct {
	Method, Path, Summary string
	Status                int // the success status: 200, or 303 for a form post
}

// New parses the templates (a broken one panics at start, never later).
func New(cfg Config) *Dashboard {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	d := &Dashboard{cfg: cfg, log: cfg.Logger, pages: map[string]*template.Template{}}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		panic(err)
	}
	for _, n := range names {
		name := strings.TrimSuffix(path.Base(n), ".html")
		if name == "layout" {
			continue
		}
		d.pages[name] = template.Must(template.New(name).Funcs(d.funcs()).ParseFS(templateFS, "templates/layout.html", n))
	}
	return d
}

type route struct {
	Page
	handler fiber.Handler
}

// routes is every dashboard route.
func (d *Dashboard) routes() []route {
	get := func(p, summary string, h fiber.Handler) route {
		return route{Page{"GET", p, summary, 200}, h}
	}
	post := func(p, summary string, h fiber.Handler) route {
		return route{Page{"POST", p, summary, 303}, h}
	}
	return []route{
		get("/", "Dashboard: overview", d.page(d.overview)),
		get("/login", "Dashboard: sign-in form", d.loginForm),
		post("/login", "Dashboard: sign in (e-mail and password)", d.login),
		post("/login/mfa", "Dashboard: sign in, the MFA code", d.loginMFA),
		post("/setup", "Dashboard: create the first account (a server without any), then sign in", d.setup),
		post("/logout", "Dashboard: sign out (revokes the refresh token)", d.logout),
		post("/org", "Dashboard: switch organization", d.switchOrg),
		get("/assets/:name", "Dashboard: a static file (htmx, script, style sheet)", d.asset),

		get("/provision", "Dashboard: provision requests", d.page(d.provisionList)),
		get("/provision/new", "Dashboard: the create-request form", d.page(d.provisionNew)),
		post("/provision", "Dashboard: create a provision request", d.page(d.provisionCreate)),
		get("/provision/:id", "Dashboard: a provision request with its runs and plan", d.page(d.provisionShow)),
		get("/provision/:id/apply", "Dashboard: confirm an apply (the plan's changes)", d.page(d.provisionConfirmApply)),
		post("/provision/:id/:action", "Dashboard: plan, apply, cancel or destroy a request", d.page(d.provisionAction)),
		get("/runs/:id/events", "Dashboard: a run's live Terraform log (Server-Sent Events)", d.runEvents),

		get("/nodes", "Dashboard: nodes", d.page(d.nodeList)),
		get("/nodes/:id", "Dashboard: a node with its instances and actions", d.page(d.nodeShow)),
		post("/nodes/:id/:action", "Dashboard: a node action (cordon, uncordon, drain, power, resize, firewall)", d.page(d.nodeAction)),

		get("/tokens", "Dashboard: API tokens", d.page(d.tokenList)),
		post("/tokens", "Dashboard: create an API token", d.page(d.tokenCreate)),
		post("/tokens/:id/delete", "Dashboard: delete an API token", d.page(d.tokenDelete)),

		get("/members", "Dashboard: members and invites", d.page(d.memberList)),
		post("/members/invite", "Dashboard: invite a member", d.page(d.memberInvite)),
		post("/members/:id/:action", "Dashboard: change a member's role or remove them", d.page(d.memberAction)),
		post("/members/invites/:id/delete", "Dashboard: withdraw an invite", d.page(d.inviteDelete)),

		get("/audit", "Dashboard: audit log", d.page(d.auditList)),

		get("/device", "Dashboard: approve a device (shardform login): the code, what it asks for", d.page(d.deviceForm)),
		post("/device", "Dashboard: approve or deny a device for an organization", d.page(d.deviceDecide)),

		get("/planner", "Dashboard: planner (recommend, fleet report)", d.page(d.plannerPage)),
		post("/planner/fleet-report", "Dashboard: make a new fleet report", d.page(d.plannerFleetReport)),

		get("/dns", "Dashboard: DNS records and auto-DNS", d.page(d.dnsPage)),
		post("/dns/:action", "Dashboard: add or delete a DNS record, save auto-DNS", d.page(d.dnsAction)),

		get("/ssh", "Dashboard: my SSH certificates, signing, CA keys", d.page(d.sshPage)),
		post("/ssh/sign", "Dashboard: sign a pasted public key", d.page(d.sshSign)),
		post("/ssh/:action", "Dashboard: revoke a certificate, rotate or retire a CA key", d.page(d.sshAction)),
	}
}

// Pages lists every dashboard route (for the OpenAPI document).
func (d *Dashboard) Pages() []Page {
	var out []Page
	for _, r := range d.routes() {
		out = append(out, r.Page)
	}
	return out
}

// Mount registers the dashboard's routes on the app.
func (d *Dashboard) Mount(app *fiber.App) {
	for _, r := range d.routes() {
		app.Add(r.Method, r.Path, d.guard, r.handler)
	}
}

// view is what every page's template gets.
type view struct {
	Title  string
	Nav    string
	Me     *me
	Orgs   []org
	CSRF   string
	Error  string
	Notice string
	Data   any
	Path   string
	Base   string // this server's address as the browser reached it
	Has    Features
}

type me struct {
	User struct {
		ID      string `json:"id"`
		Email   string `json:"email"`
		IsAdmin bool   `json:"is_admin"`
	} `json:"user"`
	Organization *struct {
		ID   string `json:"id"`
		Role string `json:"role"`
	} `json:"organization"`
	Scopes []string `json:"scopes"`
}

type org struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Role string `json:"role"`
}

// Can: the signed-in user holds perm in the current organization (to
// show a write button or not; the API refuses a write without it anyway).
func (v *view) Can(perm string) bool {
	if v.Me == nil {
		return false
	}
	for _, s := range v.Me.Scopes {
		if s == perm {
			return true
		}
	}
	return false
}

// OrgID is the current organization's id.
func (v *view) OrgID() string {
	if v.Me == nil || v.Me.Organization == nil {
		return ""
	}
	return v.Me.Organization.ID
}

// OrgName is the current organization's name.
func (v *view) OrgName() string {
	for _, o := range v.Orgs {
		if o.ID == v.OrgID() {
			return o.Name
		}
	}
	return ""
}

// pageFunc renders a page for a signed-in user.
type pageFunc func(c *fiber.Ctx, s *session, v *view) error

// page loads who the user is and their organizations, then runs h. A
// session the API no longer accepts goes to the sign-in form; an API error
// is shown with the API's message and status.
func (d *Dashboard) page(h pageFunc) fiber.Handler {
	return func(c *fiber.Ctx) error {
		s := sessionOf(c)
		if !s.signedIn() {
			return d.toLogin(c)
		}
		v := &view{CSRF: s.csrf, Path: c.Path(), Notice: d.takeFlash(c), Base: c.Protocol() + "://" + c.Hostname(), Has: d.cfg.Has}
		var who me
		err := d.do(c, s, call{method: "GET", path: "/v1/whoami", out: &who})
		if err == nil {
			v.Me = &who
			var orgs struct {
				Data []org `json:"data"`
			}
			err = d.do(c, s, call{method: "GET", path: "/v1/organizations", query: url.Values{"limit": {"100"}}, out: &orgs})
			v.Orgs = orgs.Data
		}
		if err == nil {
			err = h(c, s, v)
		}
		return d.fail(c, v, err)
	}
}

// fail answers an error of a page: the sign-in form when signed out, the
// API's message with its status otherwise.
func (d *Dashboard) fail(c *fiber.Ctx, v *view, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, errSignedOut) {
		d.endSession(c, sessionOf(c))
		return d.toLogin(c)
	}
	var aerr *APIError
	if !errors.As(err, &aerr) {
		d.log.ErrorContext(c.UserContext(), "dashboard page failed", slog.String("path", c.Path()), slog.Any("error", err))
		aerr = &APIError{Status: http.StatusInternalServerError, Message: "internal server error"}
	}
	c.Status(aerr.Status)
	if v.Title == "" {
		v.Title = http.StatusText(aerr.Status)
	}
	v.Error = aerr.Message
	return d.render(c, "error", v)
}

func (d *Dashboard) toLogin(c *fiber.Ctx) error {
	if c.Get("HX-Request") != "" {
		c.Set("HX-Redirect", "/login")
		return c.SendStatus(http.StatusUnauthorized)
	}
	next := ""
	if c.Method() == fiber.MethodGet && c.Path() != "/" {
		next = "?next=" + url.QueryEscape(c.OriginalURL())
	}
	return c.Redirect("/login"+next, http.StatusSeeOther)
}

// render executes a page's template into the answer.
func (d *Dashboard) render(c *fiber.Ctx, name string, v *view) error {
	t, ok := d.pages[name]
	if !ok {
		return errors.New("no template " + name)
	}
	if v.CSRF == "" {
		v.CSRF = sessionOf(c).csrf
	}
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	c.Set(fiber.HeaderCacheControl, "no-store")
	return t.ExecuteTemplate(c.Response().BodyWriter(), "layout", v)
}

// redirect answers a form post: to where the form said, within the
// dashboard only.
func redirect(c *fiber.Ctx, to string) error {
	if !strings.HasPrefix(to, "/") || strings.HasPrefix(to, "//") || strings.HasPrefix(to, "/\\") {
		to = "/"
	}
	return c.Redirect(to, http.StatusSeeOther)
}

var assetTypes = map[string]string{
	".js":  fiber.MIMEApplicationJavaScriptCharsetUTF8,
	".css": "text/css; charset=utf-8",
	".svg": "image/svg+xml",
}

func (d *Dashboard) asset(c *fiber.Ctx) error {
	name := c.Params("name")
	ct, ok := assetTypes[path.Ext(name)]
	if !ok || strings.Contains(name, "/") {
		return fiber.ErrNotFound
	}
	b, err := assetFS.ReadFile("assets/" + name)
	if err != nil {
		return fiber.ErrNotFound
	}
	c.Set(fiber.HeaderContentType, ct)
	c.Set(fiber.HeaderCacheControl, "public, max-age=3600")
	return c.Send(b)
}
