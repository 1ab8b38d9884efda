package api

import (
	"net/http"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/shardform/shardform/dashboard"
)

// riverUIPrefix is where River UI (riverqueue.com/riverui) is mounted.
const riverUIPrefix = "/riverui"

// riverUIRoutes mounts River UI, for platform administrators only: a
// session's JWT of a platform admin (API tokens never carry admin
// rights); everyone else gets the 404 of a path that does not exist, so
// the mount is not even revealed.
func (s *Server) riverUIRoutes(h http.Handler) {
	s.app.Use(riverUIPrefix, s.riverUIGate, netHTTP(h))
}

func (s *Server) riverUIGate(c *fiber.Ctx) error {
	cred := credential(c)
	if cred == "" && s.dashboard != nil {
		// The dashboard's session (its access token cookie, SameSite=Lax):
		// a change River UI makes must come from this server's own pages.
		cred = c.Cookies(dashboard.AccessCookie)
		if cred != "" && !safeMethod(c.Method()) && !sameSite(c) {
			cred = ""
		}
	}
	p, err := s.cfg.Accounts.Authenticate(c.UserContext(), cred, uuid.Nil)
	if err != nil || p == nil || !p.IsAdmin || p.ViaAPIToken() {
		if lerr := s.limit(c, "ip:"+c.IP()); lerr != nil {
			return lerr
		}
		return fiber.ErrNotFound
	}
	if err := s.limit(c, "user:"+p.UserID.String()); err != nil {
		return err
	}
	return c.Next()
}

func safeMethod(m string) bool {
	return m == fiber.MethodGet || m == fiber.MethodHead || m == fiber.MethodOptions
}

// sameSite: the browser says the request came from this server's own
// pages (Sec-Fetch-Site, else an Origin naming this host).
func sameSite(c *fiber.Ctx) bool {
	if site := c.Get("Sec-Fetch-Site"); site != "" {
		return site == "same-origin"
	}
	o := c.Get(fiber.HeaderOrigin)
	return o != "" && (o == "http://"+c.Hostname() || o == "https://"+c.Hostname())
}
