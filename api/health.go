package api

import (
	"context"
	"time"

	"github.com/gofiber/fiber/v2"
)

func (s *Server) live(c *fiber.Ctx) error {
	return c.JSON(fiber.Map{"status": "ok"})
}

func (s *Server) ready(c *fiber.Ctx) error {
	ctx, cancel := context.WithTimeout(c.UserContext(), 2*time.Second)
	defer cancel()
	if err := s.cfg.Health.Ping(ctx); err != nil {
		return c.Status(fiber.StatusServiceUnavailable).JSON(fiber.Map{"status": "unavailable", "error": "database: " + err.Error()})
	}
	return c.JSON(fiber.Map{"status": "ok"})
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
		db = fiber.Map{"status": "unavailable", "error": dbErr.Error()}
		status, code = "degraded", fiber.StatusServiceUnavailable
	}
	queue := fiber.Map{}
	if dbErr == nil {
		depth, err := s.cfg.Health.QueueDepth(ctx)
		if err != nil {
			queue["error"] = err.Error()
			status, code = "degraded", fiber.StatusServiceUnavailable
		} else {
			queue["jobs_by_state"] = depth
		}
	}
	return c.Status(code).JSON(fiber.Map{"status": status, "version": s.cfg.Version, "database": db, "queue": queue})
}
