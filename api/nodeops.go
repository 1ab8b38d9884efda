package api

import (
	"context"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/shardform/shardform/domain"
	"github.com/shardform/shardform/nodeops"
)

// NodeOps is what the API needs for power actions on nodes (nodeops.Service).
type NodeOps interface {
	Request(ctx context.Context, p *domain.Principal, nodeID uuid.UUID, kind string, force bool) (nodeops.Action, error)
	Status(ctx context.Context, p *domain.Principal, nodeID uuid.UUID) (nodeops.PowerStatus, error)
	ListActions(ctx context.Context, p *domain.Principal, nodeID uuid.UUID, page domain.Page) ([]nodeops.Action, int64, error)
}

func (s *Server) nodeOpsRoutes(v1 fiber.Router) {
	auth := s.authenticate
	v1.Post("/nodes/:id/power/start", auth, s.powerAction(nodeops.KindStart))
	v1.Post("/nodes/:id/power/stop", auth, s.powerAction(nodeops.KindStop))
	v1.Post("/nodes/:id/power/reboot", auth, s.powerAction(nodeops.KindReboot))
	v1.Get("/nodes/:id/power/status", auth, s.powerStatus)
	v1.Get("/nodes/:id/actions", auth, s.listNodeActions)
}

// powerAction answers 202 with the queued action (?force=true: a stop
// that powers off at once).
func (s *Server) powerAction(kind string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		id, err := pathID(c, "id", "node")
		if err != nil {
			return err
		}
		force, err := boolQuery(c, "force")
		if err != nil {
			return err
		}
		a, err := s.cfg.NodeOps.Request(c.UserContext(), principal(c), id, kind, force)
		if err != nil {
			return err
		}
		setAudit(c, a.ID.String(), nil)
		return c.Status(fiber.StatusAccepted).JSON(a)
	}
}

func (s *Server) powerStatus(c *fiber.Ctx) error {
	id, err := pathID(c, "id", "node")
	if err != nil {
		return err
	}
	st, err := s.cfg.NodeOps.Status(c.UserContext(), principal(c), id)
	if err != nil {
		return err
	}
	return c.JSON(st)
}

func (s *Server) listNodeActions(c *fiber.Ctx) error {
	id, err := pathID(c, "id", "node")
	if err != nil {
		return err
	}
	pg, err := page(c)
	if err != nil {
		return err
	}
	out, total, err := s.cfg.NodeOps.ListActions(c.UserContext(), principal(c), id, pg)
	if err != nil {
		return err
	}
	return list(c, out, pg, total)
}
