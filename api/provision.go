package api

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/shardform/shardform/domain"
	"github.com/shardform/shardform/provision"
)

// Provisioning is what the API needs of the provisioning pipeline.
type Provisioning interface {
	Create(ctx context.Context, p *domain.Principal, req provision.CreateRequest, idempotencyKey string) (provision.Request, bool, error)
	Get(ctx context.Context, p *domain.Principal, id uuid.UUID) (provision.Request, error)
	List(ctx context.Context, p *domain.Principal, f provision.Filter, page domain.Page) ([]provision.Request, int64, error)
	Plan(ctx context.Context, p *domain.Principal, id uuid.UUID) (provision.Request, error)
	Apply(ctx context.Context, p *domain.Principal, id uuid.UUID) (provision.Request, error)
	Destroy(ctx context.Context, p *domain.Principal, id uuid.UUID) (provision.Request, error)
	Logs(ctx context.Context, p *domain.Principal, id uuid.UUID, afterID int64) ([]provision.LogLine, bool, error)
	Providers() []provision.ProviderInfo
	ListNodes(ctx context.Context, p *domain.Principal, f provision.Filter, page domain.Page) ([]provision.Node, int64, error)
	GetNode(ctx context.Context, p *domain.Principal, id uuid.UUID) (provision.Node, error)
	UpdateNode(ctx context.Context, p *domain.Principal, id uuid.UUID, u provision.NodeUpdate) (provision.Node, error)
	DeleteNode(ctx context.Context, p *domain.Principal, id uuid.UUID) error
}

func (s *Server) provisionRoutes(v1 fiber.Router) {
	auth := s.authenticate
	v1.Get("/provision/providers", auth, s.listProviders)
	v1.Get("/provision", auth, s.listProvisions)
	v1.Post("/provision", auth, s.createProvision)
	v1.Get("/provision/:id", auth, s.getProvision)
	v1.Post("/provision/:id/plan", auth, s.provisionStep(Provisioning.Plan))
	v1.Post("/provision/:id/apply", auth, s.provisionStep(Provisioning.Apply))
	v1.Delete("/provision/:id", auth, s.provisionStep(Provisioning.Destroy))
	v1.Get("/provision/:id/logs", auth, s.provisionLogs)
	v1.Get("/nodes", auth, s.listNodes)
	v1.Get("/nodes/:id", auth, s.getNode)
	v1.Put("/nodes/:id", auth, s.updateNode)
	v1.Delete("/nodes/:id", auth, s.deleteNode)
}

func (s *Server) listProviders(c *fiber.Ctx) error {
	if err := need(principal(c), domain.PermProvisionRead); err != nil {
		return err
	}
	return c.JSON(fiber.Map{"data": s.cfg.Provisioning.Providers()})
}

func (s *Server) createProvision(c *fiber.Ctx) error {
	var req provision.CreateRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	r, created, err := s.cfg.Provisioning.Create(c.UserContext(), principal(c), req, c.Get("Idempotency-Key"))
	if err != nil {
		return err
	}
	status := fiber.StatusOK // an idempotent replay
	if created {
		status = fiber.StatusCreated
		setAudit(c, r.ID.String(), nil)
	}
	return c.Status(status).JSON(r)
}

func (s *Server) getProvision(c *fiber.Ctx) error {
	id, err := pathID(c, "id", "provision request")
	if err != nil {
		return err
	}
	r, err := s.cfg.Provisioning.Get(c.UserContext(), principal(c), id)
	if err != nil {
		return err
	}
	return c.JSON(r)
}

func (s *Server) listProvisions(c *fiber.Ctx) error {
	pg, err := page(c)
	if err != nil {
		return err
	}
	rs, total, err := s.cfg.Provisioning.List(c.UserContext(), principal(c), provision.Filter{Status: c.Query("status"), Provider: c.Query("provider")}, pg)
	if err != nil {
		return err
	}
	return list(c, rs, pg, total)
}

// provisionStep answers 202: the step is queued.
func (s *Server) provisionStep(step func(Provisioning, context.Context, *domain.Principal, uuid.UUID) (provision.Request, error)) fiber.Handler {
	return func(c *fiber.Ctx) error {
		id, err := pathID(c, "id", "provision request")
		if err != nil {
			return err
		}
		r, err := step(s.cfg.Provisioning, c.UserContext(), principal(c), id)
		if err != nil {
			return err
		}
		return c.Status(fiber.StatusAccepted).JSON(r)
	}
}

// provisionLogs returns the stored output, or with follow=1 streams it as
// Server-Sent Events ("log" events, then one "end" event with the final
// status) until the running job ends.
func (s *Server) provisionLogs(c *fiber.Ctx) error {
	id, err := pathID(c, "id", "provision request")
	if err != nil {
		return err
	}
	after := int64(0)
	if v := c.Query("after"); v != "" {
		if after, err = strconv.ParseInt(v, 10, 64); err != nil || after < 0 {
			return domain.Invalid("after", "must be a log id (a whole number)")
		}
	}
	p := principal(c)
	lines, running, err := s.cfg.Provisioning.Logs(c.UserContext(), p, id, after)
	if err != nil {
		return err
	}
	if c.Query("follow") != "1" && c.Query("follow") != "true" {
		return c.JSON(fiber.Map{"data": lines, "running": running})
	}
	c.Set(fiber.HeaderContentType, "text/event-stream")
	c.Set(fiber.HeaderCacheControl, "no-cache")
	c.Set("X-Accel-Buffering", "no")
	c.Context().SetBodyStreamWriter(func(w *bufio.Writer) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Hour)
		defer cancel()
		for {
			for _, l := range lines {
				after = l.ID
				b, _ := json.Marshal(l)
				fmt.Fprintf(w, "id: %d\nevent: log\ndata: %s\n\n", l.ID, b)
			}
			if !running && len(lines) == 0 {
				r, err := s.cfg.Provisioning.Get(ctx, p, id)
				if err == nil {
					b, _ := json.Marshal(fiber.Map{"status": r.Status, "error": r.Error})
					fmt.Fprintf(w, "event: end\ndata: %s\n\n", b)
				}
				_ = w.Flush()
				return
			}
			if err := w.Flush(); err != nil {
				return // the client went away
			}
			if len(lines) == 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(250 * time.Millisecond):
				}
			}
			if lines, running, err = s.cfg.Provisioning.Logs(ctx, p, id, after); err != nil {
				return
			}
		}
	})
	return nil
}

func (s *Server) listNodes(c *fiber.Ctx) error {
	pg, err := page(c)
	if err != nil {
		return err
	}
	ns, total, err := s.cfg.Provisioning.ListNodes(c.UserContext(), principal(c), provision.Filter{Status: c.Query("status"), Provider: c.Query("provider")}, pg)
	if err != nil {
		return err
	}
	return list(c, ns, pg, total)
}

func (s *Server) getNode(c *fiber.Ctx) error {
	id, err := pathID(c, "id", "node")
	if err != nil {
		return err
	}
	n, err := s.cfg.Provisioning.GetNode(c.UserContext(), principal(c), id)
	if err != nil {
		return err
	}
	return c.JSON(n)
}

func (s *Server) updateNode(c *fiber.Ctx) error {
	id, err := pathID(c, "id", "node")
	if err != nil {
		return err
	}
	var u provision.NodeUpdate
	if err := decode(c, &u); err != nil {
		return err
	}
	n, err := s.cfg.Provisioning.UpdateNode(c.UserContext(), principal(c), id, u)
	if err != nil {
		return err
	}
	return c.JSON(n)
}

func (s *Server) deleteNode(c *fiber.Ctx) error {
	id, err := pathID(c, "id", "node")
	if err != nil {
		return err
	}
	if err := s.cfg.Provisioning.DeleteNode(c.UserContext(), principal(c), id); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}
