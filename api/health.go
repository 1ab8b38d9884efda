package api

import (
	"context"
	"log/slog"
	"maps"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"
)

// Public health answers say what is wrong in words that reveal nothing of
// the system (no database error text): the details go to the log, and to
// a platform admin who sends their credential along.
const (
	publicDatabaseDown = "database unavailable"
	publicQueueDown    = "queue state unavailable"
)

// detailFor is err's text for a platform admin's credential (sent with the
// health request) and "" for anyone else.
func (s *Server) detailFor(c *fiber.Ctx, err error) string {
	cred := credential(c)
	if cred == "" {
		return ""
	}
	p, aerr := s.cfg.Accounts.Authenticate(c.UserContext(), cred, uuid.Nil)
	if aerr != nil || !p.IsAdmin {
		return ""
	}
	return err.Error()
}

func (s *Server) live(c *fiber.Ctx) error {
	return c.JSON(fiber.Map{"status": "ok"})
}

// ready is 200 while Postgres answers; 503 when it does not. A queue this
// process cannot run (Terraform missing) makes it "degraded", still 200:
// the API and the other queues work.
func (s *Server) ready(c *fiber.Ctx) error {
	ctx, cancel := context.WithTimeout(c.UserContext(), 2*time.Second)
	defer cancel()
	if err := s.cfg.Health.Ping(ctx); err != nil {
		s.log.ErrorContext(ctx, "readiness: database ping failed", slog.Any("error", err))
		return c.Status(fiber.StatusServiceUnavailable).JSON(readyBody{Status: "unavailable", Error: publicDatabaseDown, Detail: s.detailFor(c, err)})
	}
	if len(s.cfg.Unavailable) > 0 {
		return c.JSON(readyBody{Status: "degraded", Unavailable: maps.Clone(s.cfg.Unavailable)})
	}
	return c.JSON(readyBody{Status: "ok"})
}

func (s *Server) detailed(c *fiber.Ctx) error {
	ctx, cancel := context.WithTimeout(c.UserContext(), 2*time.Second)
	defer cancel()
	start := time.Now()
	dbErr := s.cfg.Health.Ping(ctx)
	latency := time.Since(start)
	db := fiber.Map{"status": "ok", "latency_ms": float64(latency.Microseconds()) / 1000}
	status, code := "ok", fiber.StatusOK
	if dbErr != nil {
		s.log.ErrorContext(ctx, "health: database ping failed", slog.Any("error", dbErr))
		db = fiber.Map{"status": "unavailable", "error": publicDatabaseDown}
		if d := s.detailFor(c, dbErr); d != "" {
			db["detail"] = d
		}
		status, code = "degraded", fiber.StatusServiceUnavailable
	}
	queue := fiber.Map{}
	if dbErr == nil {
		depth, err := s.cfg.Health.QueueDepth(ctx)
		if err != nil {
			s.log.ErrorContext(ctx, "health: queue depth failed", slog.Any("error", err))
			queue["error"] = publicQueueDown
			if d := s.detailFor(c, err); d != "" {
				queue["detail"] = d
			}
			status, code = "degraded", fiber.StatusServiceUnavailable
		} else {
			queue["jobs_by_state"] = depth
		}
	}
	if len(s.cfg.Unavailable) > 0 {
		queue["unavailable"] = maps.Clone(s.cfg.Unavailable)
		if status == "ok" {
			status = "degraded"
		}
	}
	return c.Status(code).JSON(fiber.Map{"status": status, "version": s.cfg.Version, "database": db, "queue": queue})
}
