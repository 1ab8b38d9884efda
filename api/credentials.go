package api

import (
	"context"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/shardform/shardform/credentials"
	"github.com/shardform/shardform/domain"
)

// Credentials is what the API needs of the cloud credential store
// (credentials.Service).
type Credentials interface {
	Create(ctx context.Context, p *domain.Principal, in credentials.Input) (credentials.Credential, error)
	Get(ctx context.Context, p *domain.Principal, id uuid.UUID) (credentials.Credential, error)
	List(ctx context.Context, p *domain.Principal, provider string, page domain.Page) ([]credentials.Credential, int64, error)
	Update(ctx context.Context, p *domain.Principal, id uuid.UUID, in credentials.Input) (credentials.Credential, error)
	Delete(ctx context.Context, p *domain.Principal, id uuid.UUID) error
	SetDefault(ctx context.Context, p *domain.Principal, id uuid.UUID) (credentials.Credential, error)
	Verify(ctx context.Context, p *domain.Principal, id uuid.UUID) (credentials.VerifyResult, error)
}

func (s *Server) credentialRoutes(v1 fiber.Router) {
	auth := s.authenticate
	v1.Get("/credentials", auth, s.listCredentials)
	v1.Post("/credentials", auth, s.createCredential)
	v1.Get("/credentials/:id", auth, s.credentialStep(Credentials.Get, false))
	v1.Put("/credentials/:id", auth, s.updateCredential)
	v1.Delete("/credentials/:id", auth, s.deleteCredential)
	v1.Post("/credentials/:id/default", auth, s.credentialStep(Credentials.SetDefault, true))
	v1.Post("/credentials/:id/verify", auth, s.verifyCredential)
}

func (s *Server) listCredentials(c *fiber.Ctx) error {
	pg, err := page(c)
	if err != nil {
		return err
	}
	creds, total, err := s.cfg.Credentials.List(c.UserContext(), principal(c), c.Query("provider"), pg)
	if err != nil {
		return err
	}
	return list(c, creds, pg, total)
}

func (s *Server) createCredential(c *fiber.Ctx) error {
	var in credentials.Input
	if err := decode(c, &in); err != nil {
		return err
	}
	cred, err := s.cfg.Credentials.Create(c.UserContext(), principal(c), in)
	if err != nil {
		return err
	}
	setAudit(c, cred.ID.String(), nil)
	return c.Status(fiber.StatusCreated).JSON(cred)
}

// credentialStep answers one credential after step (audited when it changes one).
func (s *Server) credentialStep(step func(Credentials, context.Context, *domain.Principal, uuid.UUID) (credentials.Credential, error), audited bool) fiber.Handler {
	return func(c *fiber.Ctx) error {
		id, err := pathID(c, "id", "credential")
		if err != nil {
			return err
		}
		cred, err := step(s.cfg.Credentials, c.UserContext(), principal(c), id)
		if err != nil {
			return err
		}
		if audited {
			setAudit(c, id.String(), nil)
		}
		return c.JSON(cred)
	}
}

func (s *Server) updateCredential(c *fiber.Ctx) error {
	id, err := pathID(c, "id", "credential")
	if err != nil {
		return err
	}
	var in credentials.Input
	if err := decode(c, &in); err != nil {
		return err
	}
	cred, err := s.cfg.Credentials.Update(c.UserContext(), principal(c), id, in)
	if err != nil {
		return err
	}
	setAudit(c, id.String(), nil)
	return c.JSON(cred)
}

func (s *Server) deleteCredential(c *fiber.Ctx) error {
	id, err := pathID(c, "id", "credential")
	if err != nil {
		return err
	}
	if err := s.cfg.Credentials.Delete(c.UserContext(), principal(c), id); err != nil {
		return err
	}
	setAudit(c, id.String(), nil)
	return c.SendStatus(fiber.StatusNoContent)
}

func (s *Server) verifyCredential(c *fiber.Ctx) error {
	id, err := pathID(c, "id", "credential")
	if err != nil {
		return err
	}
	res, err := s.cfg.Credentials.Verify(c.UserContext(), principal(c), id)
	if err != nil {
		return err
	}
	setAudit(c, id.String(), nil)
	return c.JSON(res)
}
