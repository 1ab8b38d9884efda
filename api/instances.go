package api

import (
	"context"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/shardform/shardform/domain"
	"github.com/shardform/shardform/placement"
)

// Instances is what the API needs to place game-server instances on nodes
// (placement.Service).
type Instances interface {
	Create(ctx context.Context, p *domain.Principal, r placement.CreateRequest) (placement.Instance, error)
	Get(ctx context.Context, p *domain.Principal, id uuid.UUID) (placement.Instance, error)
	List(ctx context.Context, p *domain.Principal, f placement.Filter, page domain.Page) ([]placement.Instance, int64, error)
	Delete(ctx context.Context, p *domain.Principal, id uuid.UUID) error
	Move(ctx context.Context, p *domain.Principal, id uuid.UUID, r placement.MoveRequest) (placement.Instance, error)
	// Drains and migrations of nodes (migrations.go).
	Drain(ctx context.Context, p *domain.Principal, nodeID uuid.UUID, r placement.DrainRequest) (placement.Migration, error)
	Migrate(ctx context.Context, p *domain.Principal, nodeID uuid.UUID, r placement.MigrateRequest) (placement.Migration, error)
	ListMigrations(ctx context.Context, p *domain.Principal, f placement.MigrationFilter, page domain.Page) ([]placement.Migration, int64, error)
	GetMigration(ctx context.Context, p *domain.Principal, id uuid.UUID) (placement.Migration, error)
	CancelMigration(ctx context.Context, p *domain.Principal, id uuid.UUID) (placement.Migration, error)
}

func (s *Server) instanceRoutes(v1 fiber.Router) {
	auth := s.authenticate
	v1.Get("/instances", auth, s.listInstances)
	v1.Post("/instances", auth, s.createInstance)
	v1.Get("/instances/:id", auth, s.getInstance)
	v1.Delete("/instances/:id", auth, s.deleteInstance)
	v1.Post("/instances/:id/move", auth, s.moveInstance)
	s.migrationRoutes(v1)
}

func (s *Server) listInstances(c *fiber.Ctx) error {
	if err := need(principal(c), domain.PermNodesRead); err != nil {
		return err
	}
	pg, err := page(c)
	if err != nil {
		return err
	}
	f := placement.Filter{Template: c.Query("template")}
	if v := c.Query("node"); v != "" {
		id, err := uuid.Parse(v)
		if err != nil {
			return domain.Invalid("node", "must be a node id (a UUID)")
		}
		f.NodeID = uuid.NullUUID{UUID: id, Valid: true}
	}
	out, total, err := s.cfg.Instances.List(c.UserContext(), principal(c), f, pg)
	if err != nil {
		return err
	}
	return list(c, out, pg, total)
}

func (s *Server) createInstance(c *fiber.Ctx) error {
	if err := need(principal(c), domain.PermNodesWrite); err != nil {
		return err
	}
	var r placement.CreateRequest
	if err := decode(c, &r); err != nil {
		return err
	}
	in, err := s.cfg.Instances.Create(c.UserContext(), principal(c), r)
	if err != nil {
		return err
	}
	setAudit(c, in.ID.String(), nil)
	return c.Status(fiber.StatusCreated).JSON(in)
}

func (s *Server) getInstance(c *fiber.Ctx) error {
	id, err := pathID(c, "id", "instance")
	if err != nil {
		return err
	}
	in, err := s.cfg.Instances.Get(c.UserContext(), principal(c), id)
	if err != nil {
		return err
	}
	return c.JSON(in)
}

func (s *Server) deleteInstance(c *fiber.Ctx) error {
	id, err := pathID(c, "id", "instance")
	if err != nil {
		return err
	}
	if err := s.cfg.Instances.Delete(c.UserContext(), principal(c), id); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

func (s *Server) moveInstance(c *fiber.Ctx) error {
	if err := need(principal(c), domain.PermNodesWrite); err != nil {
		return err
	}
	id, err := pathID(c, "id", "instance")
	if err != nil {
		return err
	}
	var r placement.MoveRequest
	if err := decode(c, &r); err != nil {
		return err
	}
	in, err := s.cfg.Instances.Move(c.UserContext(), principal(c), id, r)
	if err != nil {
		return err
	}
	return c.JSON(in)
}
