package api

import (
	"net/http"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/google/uuid"
)

// riverUIPrefix is where River UI (riverqueue.com/riverui) is mounted.
const riverUIPrefix = "/riverui"

// riverUIRoutes mounts River UI, for platform administrators only: a
// session's JWT of a platform admin (API tokens never carry admin
// rights); everyone else gets the 404 of a path that does not exist, so
// the mount is not even revealed.
func (s *Server) riverUIRoutes(h http.Handler) {
	s.app.Use(riverUIPrefix, s.riverUIGate, adaptor.HTTPHandler(h))
}

func (s *Server) riverUIGate(c *fiber.Ctx) error {
	p, err := s.cfg.Accounts.Authenticate(c.UserContext(), credential(c), uuid.Nil)
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
