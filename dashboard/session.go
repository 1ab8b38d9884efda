package dashboard

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/url"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
)

// Cookies of a dashboard session. Every one is HttpOnly and SameSite=Lax,
// and Secure when the request came over TLS (directly, or through a proxy
// the server trusts, which says so with X-Forwarded-Proto).
const (
	// AccessCookie holds the session's access token (a JWT, as
	// /v1/auth/login answers it); River UI accepts it from platform admins.
	AccessCookie  = "sf_access"
	refreshCookie = "sf_refresh"
	orgCookie     = "sf_org"
	csrfCookie    = "sf_csrf"
	mfaCookie     = "sf_mfa" // the MFA challenge token between the two sign-in steps

	csrfField  = "_csrf"
	csrfHeader = "X-CSRF-Token"
)

// refreshLifetime is how long the browser keeps the refresh token (the
// identity service's default refresh TTL; the server refuses it after its
// own TTL anyway).
const refreshLifetime = 30 * 24 * time.Hour

// session is what the request's cookies hold.
type session struct {
	access, refresh, org, csrf string
}

func readSession(c *fiber.Ctx) *session {
	return &session{
		access:  c.Cookies(AccessCookie),
		refresh: c.Cookies(refreshCookie),
		org:     c.Cookies(orgCookie),
		csrf:    c.Cookies(csrfCookie),
	}
}

func (s *session) signedIn() bool { return s.access != "" || s.refresh != "" }

// setCookie sets one of the session's cookies; maxAge < 0 deletes it.
func (d *Dashboard) setCookie(c *fiber.Ctx, name, value string, maxAge time.Duration) {
	ck := &fiber.Cookie{
		Name: name, Value: value, Path: "/", HTTPOnly: true, SameSite: fiber.CookieSameSiteLaxMode,
		Secure: c.Protocol() == "https",
	}
	switch {
	case maxAge < 0:
		ck.Value, ck.MaxAge, ck.Expires = "", -1, time.Unix(0, 0)
	case maxAge > 0:
		ck.MaxAge = int(maxAge.Seconds())
	}
	c.Cookie(ck)
}

// tokens is an answer of /v1/auth/login, /refresh and /mfa/challenge.
type tokens struct {
	AccessToken    string `json:"access_token"`
	RefreshToken   string `json:"refresh_token"`
	ExpiresIn      int    `json:"expires_in"`
	MFARequired    bool   `json:"mfa_required"`
	ChallengeToken string `json:"challenge_token"`
}

// startSession stores a new session's tokens (and a fresh CSRF token: a
// token planted before the sign-in is never a session's).
func (d *Dashboard) startSession(c *fiber.Ctx, s *session, t tokens) {
	d.storeTokens(c, s, t)
	s.csrf = newToken()
	d.setCookie(c, csrfCookie, s.csrf, 0)
	d.setCookie(c, mfaCookie, "", -1)
}

// storeTokens keeps the access token a minute less than its lifetime, so
// the browser drops it before the API would refuse it and the next
// request refreshes the session first.
func (d *Dashboard) storeTokens(c *fiber.Ctx, s *session, t tokens) {
	s.access, s.refresh = t.AccessToken, t.RefreshToken
	life := time.Duration(t.ExpiresIn)*time.Second - time.Minute
	if life < 30*time.Second {
		life = 30 * time.Second
	}
	d.setCookie(c, AccessCookie, t.AccessToken, life)
	d.setCookie(c, refreshCookie, t.RefreshToken, refreshLifetime)
}

// refresh trades the session's refresh token for new tokens
// (POST /v1/auth/refresh); false ends the session.
func (d *Dashboard) refresh(c *fiber.Ctx, s *session) bool {
	var t tokens
	err := d.do(c, s, call{method: "POST", path: "/v1/auth/refresh", anonymous: true,
		body: map[string]string{"refresh_token": s.refresh}, out: &t})
	if err != nil || t.AccessToken == "" {
		d.endSession(c, s)
		return false
	}
	d.storeTokens(c, s, t)
	return true
}

// endSession deletes the session's cookies (the CSRF cookie stays: the
// sign-in form needs one).
func (d *Dashboard) endSession(c *fiber.Ctx, s *session) {
	s.access, s.refresh = "", ""
	for _, name := range []string{AccessCookie, refreshCookie, mfaCookie} {
		d.setCookie(c, name, "", -1)
	}
}

func newToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}

// errCSRF: a state-changing request without the session's CSRF token, or
// from another origin.
var errCSRF = errors.New("the form is stale or came from another site: reload the page and try again")

// guard sets the security headers of every dashboard answer, gives the
// browser a CSRF token when it has none, and refuses a state-changing
// request that does not carry it (double submit: the form field or the
// X-CSRF-Token header htmx sends must equal the HttpOnly cookie, which
// another site can neither read nor set) or whose Origin is another site.
func (d *Dashboard) guard(c *fiber.Ctx) error {
	c.Set("Content-Security-Policy", csp)
	c.Set("X-Frame-Options", "DENY")
	c.Set("X-Content-Type-Options", "nosniff")
	c.Set("Referrer-Policy", "same-origin")
	s := readSession(c)
	if len(s.csrf) != 43 {
		s.csrf = newToken()
		d.setCookie(c, csrfCookie, s.csrf, 0)
	}
	c.Locals(localSession, s)
	switch c.Method() {
	case fiber.MethodGet, fiber.MethodHead:
		return c.Next()
	}
	if !sameOrigin(c) {
		return d.forbidden(c)
	}
	sent := c.Get(csrfHeader)
	if sent == "" {
		sent = c.FormValue(csrfField)
	}
	if c.Cookies(csrfCookie) == "" || subtle.ConstantTimeCompare([]byte(sent), []byte(s.csrf)) != 1 {
		return d.forbidden(c)
	}
	return c.Next()
}

func (d *Dashboard) forbidden(c *fiber.Ctx) error {
	c.Status(fiber.StatusForbidden)
	if c.Get("HX-Request") != "" {
		return c.SendString(errCSRF.Error())
	}
	return d.render(c, "error", &view{Title: "Forbidden", Error: errCSRF.Error()})
}

// sameOrigin: the request's Origin (or, without one, its Referer) is this
// server, or absent (a browser always sends one with a form post).
func sameOrigin(c *fiber.Ctx) bool {
	o := c.Get(fiber.HeaderOrigin)
	if o == "" {
		o = c.Get(fiber.HeaderReferer)
	}
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	if err != nil {
		return false
	}
	return strings.EqualFold(u.Host, c.Hostname())
}

const localSession = "dashboard_session"

func sessionOf(c *fiber.Ctx) *session {
	s, _ := c.Locals(localSession).(*session)
	if s == nil {
		s = readSession(c)
	}
	return s
}
