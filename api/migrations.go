package api

import (
	"bytes"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/shardform/shardform/domain"
	"github.com/shardform/shardform/placement"
)

func (s *Server) migrationRoutes(v1 fiber.Router) {
	auth := s.authenticate
	v1.Post("/nodes/:id/drain", auth, s.drainNode)
	v1.Post("/nodes/:id/migrate", auth, s.migrateNode)
	v1.Get("/migrations", auth, s.listMigrations)
	v1.Get("/migrations/:id", auth, s.getMigration)
	v1.Post("/migrations/:id/cancel", auth, s.cancelMigration)
}

// drainNode answers 202 with the queued migration record, or 200 with the
// plan of a dry run (which changes nothing and is not audited).
func (s *Server) drainNode(c *fiber.Ctx) error {
	if err := need(principal(c), domain.PermNodesWrite); err != nil {
		return err
	}
	id, err := pathID(c, "id", "node")
	if err != nil {
		return err
	}
	var r placement.DrainRequest
	if len(bytes.TrimSpace(c.Body())) > 0 {
		if err := decode(c, &r); err != nil {
			return err
		}
	}
	m, err := s.cfg.Instances.Drain(c.UserContext(), principal(c), id, r)
	if err != nil {
		return err
	}
	if m.DryRun {
		readOnly(c)
		return c.JSON(m)
	}
	return c.Status(fiber.StatusAccepted).JSON(m)
}

// migrateNode answers 201 with the migration record: every instance moved.
func (s *Server) migrateNode(c *fiber.Ctx) error {
	if err := need(principal(c), domain.PermNodesWrite); err != nil {
		return err
	}
	id, err := pathID(c, "id", "node")
	if err != nil {
		return err
	}
	var r placement.MigrateRequest
	if err := decode(c, &r); err != nil {
		return err
	}
	m, err := s.cfg.Instances.Migrate(c.UserContext(), principal(c), id, r)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(m)
}

func (s *Server) listMigrations(c *fiber.Ctx) error {
	if err := need(principal(c), domain.PermNodesRead); err != nil {
		return err
	}
	pg, err := page(c)
	if err != nil {
		return err
	}
	f := placement.MigrationFilter{Status: c.Query("status"), Kind: c.Query("kind")}
	if v := c.Query("node"); v != "" {
		id, err := uuid.Parse(v) // checked canonical by checkQuery
		if err != nil {
			return domain.Invalid("node", "must be a node id (a UUID)")
		}
		f.NodeID = uuid.NullUUID{UUID: id, Valid: true}
	}
	out, total, err := s.cfg.Instances.ListMigrations(c.UserContext(), principal(c), f, pg)
	if err != nil {
		return err
	}
	return list(c, out, pg, total)
}

func (s *Server) getMigration(c *fiber.Ctx) error {
	id, err := pathID(c, "id", "migration")
	if err != nil {
		return err
	}
	m, err := s.cfg.Instances.GetMigration(c.UserContext(), principal(c), id)
	if err != nil {
		return err
	}
	return c.JSON(m)
}

// cancelMigration answers 202: a queued migration is cancelled at once, a
// running drain stops before its next move.
func (s *Server) cancelMigration(c *fiber.Ctx) error {
	id, err := pathID(c, "id", "migration")
	if err != nil {
		return err
	}
	m, err := s.cfg.Instances.CancelMigration(c.UserContext(), principal(c), id)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusAccepted).JSON(m)
}
