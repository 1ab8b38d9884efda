package dashboard

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
)

type loginData struct {
	Email string
	Next  string
	MFA   bool
	// Setup: the server has no account yet; the form creates the first
	// (platform administrator) with POST /v1/auth/bootstrap.
	Setup bool
}

// needsSetup asks the API whether the first account is still to be made.
func (d *Dashboard) needsSetup(c *fiber.Ctx, s *session) (bool, error) {
	var st struct {
		NeedsBootstrap bool `json:"needs_bootstrap"`
	}
	err := d.do(c, s, call{method: "GET", path: "/v1/auth/bootstrap/status", anonymous: true, out: &st})
	return st.NeedsBootstrap, err
}

// safeNext is a sign-in's "next" page: a dashboard path only.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") ||
		strings.HasPrefix(next, "/login") {
		return "/"
	}
	return next
}

func (d *Dashboard) loginForm(c *fiber.Ctx) error {
	s := sessionOf(c)
	data := &loginData{Next: safeNext(c.Query("next"))}
	if c.Query("mfa") == "1" && c.Cookies(mfaCookie) != "" {
		data.MFA = true
	}
	title := "Sign in"
	if !data.MFA {
		setup, err := d.needsSetup(c, s)
		if err != nil {
			return d.fail(c, &view{Title: title}, err)
		}
		if data.Setup = setup; setup {
			title = "Create the first account"
		}
	}
	return d.render(c, "login", &view{Title: title, CSRF: s.csrf, Data: data})
}

// setup creates the first account (POST /v1/auth/bootstrap: a platform
// administrator with an organization of their own), then signs it in.
// Once any account exists the API refuses it (409), shown on the form.
func (d *Dashboard) setup(c *fiber.Ctx) error {
	s := sessionOf(c)
	data := &loginData{Email: c.FormValue("email"), Next: "/", Setup: true}
	creds := map[string]string{"email": data.Email, "password": c.FormValue("password")}
	if c.FormValue("password") != c.FormValue("password_again") {
		return d.loginFailed(c, data, &APIError{Status: http.StatusBadRequest, Message: "password_again: the two passwords differ"})
	}
	if err := d.do(c, s, call{method: "POST", path: "/v1/auth/bootstrap", anonymous: true, body: creds}); err != nil {
		var aerr *APIError
		if errors.As(err, &aerr) && aerr.Status == http.StatusConflict {
			data.Setup = false // someone was first: sign in instead
		}
		return d.loginFailed(c, data, err)
	}
	var t tokens
	if err := d.do(c, s, call{method: "POST", path: "/v1/auth/login", anonymous: true, body: creds, out: &t}); err != nil {
		return d.loginFailed(c, data, err)
	}
	d.startSession(c, s, t)
	d.flash(c, "Welcome: you are the platform administrator, in an organization of your own. Create a provision request to get your first node.")
	return redirect(c, "/")
}

// login signs in with POST /v1/auth/login: a session, or (MFA enrolled)
// the challenge token kept for the code form.
func (d *Dashboard) login(c *fiber.Ctx) error {
	s := sessionOf(c)
	data := &loginData{Email: c.FormValue("email"), Next: safeNext(c.FormValue("next"))}
	var t tokens
	err := d.do(c, s, call{method: "POST", path: "/v1/auth/login", anonymous: true,
		body: map[string]string{"email": data.Email, "password": c.FormValue("password")}, out: &t})
	if err != nil {
		return d.loginFailed(c, data, err)
	}
	if t.MFARequired {
		d.setCookie(c, mfaCookie, t.ChallengeToken, 10*time.Minute)
		return redirect(c, "/login?mfa=1&next="+url.QueryEscape(data.Next))
	}
	d.startSession(c, s, t)
	return redirect(c, data.Next)
}

// loginMFA answers the MFA challenge (POST /v1/auth/mfa/challenge).
func (d *Dashboard) loginMFA(c *fiber.Ctx) error {
	s := sessionOf(c)
	data := &loginData{Next: safeNext(c.FormValue("next")), MFA: true}
	challenge := c.Cookies(mfaCookie)
	if challenge == "" {
		data.MFA = false
		return d.loginFailed(c, data, &APIError{Status: http.StatusUnauthorized, Message: "the sign-in expired: enter your e-mail and password again"})
	}
	var t tokens
	err := d.do(c, s, call{method: "POST", path: "/v1/auth/mfa/challenge", anonymous: true,
		body: map[string]string{"challenge_token": challenge, "code": strings.TrimSpace(c.FormValue("code"))}, out: &t})
	if err != nil {
		var aerr *APIError
		if errors.As(err, &aerr) && aerr.Status == http.StatusUnauthorized && strings.Contains(aerr.Message, "log in again") {
			d.setCookie(c, mfaCookie, "", -1)
			data.MFA = false
		}
		return d.loginFailed(c, data, err)
	}
	d.startSession(c, s, t)
	return redirect(c, data.Next)
}

func (d *Dashboard) loginFailed(c *fiber.Ctx, data *loginData, err error) error {
	var aerr *APIError
	if !errors.As(err, &aerr) {
		return d.fail(c, &view{Title: "Sign in"}, err)
	}
	c.Status(aerr.Status)
	title := "Sign in"
	if data.Setup {
		title = "Create the first account"
	}
	return d.render(c, "login", &view{Title: title, CSRF: sessionOf(c).csrf, Error: aerr.Message, Data: data})
}

// logout revokes the refresh token (POST /v1/auth/logout) and deletes the
// session's cookies.
func (d *Dashboard) logout(c *fiber.Ctx) error {
	s := sessionOf(c)
	if s.refresh != "" {
		if err := d.do(c, s, call{method: "POST", path: "/v1/auth/logout", anonymous: true,
			body: map[string]string{"refresh_token": s.refresh}}); err != nil {
			var aerr *APIError
			if !errors.As(err, &aerr) || aerr.Status >= 500 {
				return d.fail(c, &view{Title: "Sign out"}, err)
			}
			// 4xx: the token was already unusable; the cookies go anyway.
		}
	}
	d.endSession(c, s)
	d.setCookie(c, orgCookie, "", -1)
	return redirect(c, "/login")
}

// switchOrg makes another of the user's organizations the current one
// (sent as X-Organization-ID, which the API checks against memberships).
func (d *Dashboard) switchOrg(c *fiber.Ctx) error {
	s := sessionOf(c)
	if !s.signedIn() {
		return d.toLogin(c)
	}
	id := c.FormValue("organization_id")
	probe := *s
	probe.org = id
	var who me
	if err := d.do(c, &probe, call{method: "GET", path: "/v1/whoami", out: &who}); err != nil {
		return d.fail(c, &view{Title: "Switch organization"}, err)
	}
	s.access, s.refresh = probe.access, probe.refresh
	d.setCookie(c, orgCookie, id, refreshLifetime)
	return redirect(c, "/")
}
