package api

import (
	"context"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/shardform/shardform/domain"
	"github.com/shardform/shardform/sshca"
	"github.com/shardform/shardform/sshsign"
)

// SSHCA is what the API needs of the SSH certificate authority
// (sshsign.Service).
type SSHCA interface {
	Sign(ctx context.Context, p *domain.Principal, req sshsign.SignRequest) (sshsign.Signed, error)
	ListCertificates(ctx context.Context, p *domain.Principal, f sshsign.Filter, page domain.Page) ([]sshsign.Certificate, int64, error)
	GetCertificate(ctx context.Context, p *domain.Principal, id uuid.UUID) (sshsign.Certificate, error)
	RevokeCertificate(ctx context.Context, p *domain.Principal, id uuid.UUID) (sshsign.Certificate, error)
	GetPolicy(ctx context.Context, p *domain.Principal) (sshca.Policy, error)
	SetPolicy(ctx context.Context, p *domain.Principal, pol sshca.Policy) (sshca.Policy, error)
	ListCAKeys(ctx context.Context, p *domain.Principal) ([]sshsign.CAKey, error)
	GenerateCAKey(ctx context.Context, p *domain.Principal, alg string) (sshsign.CAKey, error)
	RotateCAKey(ctx context.Context, p *domain.Principal, alg string) (sshsign.CAKey, error)
	RetireCAKey(ctx context.Context, p *domain.Principal, id uuid.UUID) (sshsign.CAKey, error)
	ListHostCAKeys(ctx context.Context, p *domain.Principal) ([]sshsign.CAKey, error)
	RotateHostCAKey(ctx context.Context, p *domain.Principal, alg string) (sshsign.CAKey, error)
	RetireHostCAKey(ctx context.Context, p *domain.Principal, id uuid.UUID) (sshsign.CAKey, error)
	TrustedCAKeys(ctx context.Context, org uuid.UUID) (string, error)
	KnownHosts(ctx context.Context, org uuid.UUID) (string, error)
	SignHost(ctx context.Context, p *domain.Principal, req sshsign.HostSignRequest) (sshsign.HostSigned, error)
	ListHostCertificates(ctx context.Context, p *domain.Principal, nodeID string, page domain.Page) ([]sshsign.HostCertificate, int64, error)
	KRL(ctx context.Context, org uuid.UUID) ([]byte, error)
	HostKRL(ctx context.Context, org uuid.UUID) ([]byte, error)
}

func (s *Server) sshRoutes(v1 fiber.Router) {
	auth, pub := s.authenticate, s.publicLimit
	v1.Get("/ssh/ca-public-key", pub, s.sshPublicFile(func(ctx context.Context, org uuid.UUID) ([]byte, error) {
		text, err := s.cfg.SSH.TrustedCAKeys(ctx, org)
		return []byte(text), err
	}, fiber.MIMETextPlainCharsetUTF8))
	v1.Get("/ssh/known-hosts", pub, s.sshPublicFile(func(ctx context.Context, org uuid.UUID) ([]byte, error) {
		text, err := s.cfg.SSH.KnownHosts(ctx, org)
		return []byte(text), err
	}, fiber.MIMETextPlainCharsetUTF8))
	v1.Get("/ssh/krl", pub, s.sshPublicFile(s.cfg.SSH.KRL, fiber.MIMEOctetStream))
	v1.Get("/ssh/host-krl", pub, s.sshPublicFile(s.cfg.SSH.HostKRL, fiber.MIMEOctetStream))

	v1.Post("/ssh/certificate", auth, s.signSSHCertificate)
	v1.Get("/ssh/certificates", auth, s.listSSHCertificates)
	v1.Get("/ssh/certificates/:id", auth, s.getSSHCertificate)
	v1.Post("/ssh/certificates/:id/revoke", auth, s.revokeSSHCertificate)
	v1.Post("/ssh/host-certificate", auth, s.signSSHHostCertificate)
	v1.Get("/ssh/host-certificates", auth, s.listSSHHostCertificates)
	v1.Get("/ssh/policy", auth, s.getSSHPolicy)
	v1.Put("/ssh/policy", auth, s.putSSHPolicy)
	v1.Get("/ssh/ca/keys", auth, s.listSSHCAKeys(SSHCA.ListCAKeys))
	v1.Post("/ssh/ca/keys", auth, s.sshCAKeyStep(SSHCA.GenerateCAKey))
	v1.Post("/ssh/ca/keys/rotate", auth, s.sshCAKeyStep(SSHCA.RotateCAKey))
	v1.Post("/ssh/ca/keys/:id/retire", auth, s.retireSSHCAKey(SSHCA.RetireCAKey, "CA key"))
	v1.Get("/ssh/host-ca/keys", auth, s.listSSHCAKeys(SSHCA.ListHostCAKeys))
	v1.Post("/ssh/host-ca/keys/rotate", auth, s.sshCAKeyStep(SSHCA.RotateHostCAKey))
	v1.Post("/ssh/host-ca/keys/:id/retire", auth, s.retireSSHCAKey(SSHCA.RetireHostCAKey, "host CA key"))
}

// sshPublicFile serves a file nodes fetch without credentials; the
// organization is ?organization_id= or X-Organization-ID.
func (s *Server) sshPublicFile(get func(context.Context, uuid.UUID) ([]byte, error), contentType string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		raw := c.Query("organization_id")
		if raw == "" {
			raw = c.Get(headerOrgID)
		}
		if raw == "" {
			return domain.Invalid("organization_id", "is required (query parameter or X-Organization-ID header)")
		}
		org, err := domain.ParseID("organization_id", raw)
		if err != nil {
			return err
		}
		body, err := get(c.UserContext(), org)
		if err != nil {
			return err
		}
		c.Set(fiber.HeaderContentType, contentType)
		c.Set(fiber.HeaderCacheControl, "no-cache")
		return c.Send(body)
	}
}

func (s *Server) signSSHCertificate(c *fiber.Ctx) error {
	var req sshsign.SignRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	// The worker writes the audit entry with the certificate's record.
	req.Audit = auditedBy(c, fiber.StatusOK)
	out, err := s.cfg.SSH.Sign(c.UserContext(), principal(c), req)
	if err != nil {
		return err
	}
	return c.JSON(out)
}

func (s *Server) signSSHHostCertificate(c *fiber.Ctx) error {
	if err := need(principal(c), domain.PermSSHAdmin); err != nil {
		return err
	}
	var req sshsign.HostSignRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	req.Audit = auditedBy(c, fiber.StatusOK)
	out, err := s.cfg.SSH.SignHost(c.UserContext(), principal(c), req)
	if err != nil {
		return err
	}
	return c.JSON(out)
}

func (s *Server) listSSHHostCertificates(c *fiber.Ctx) error {
	pg, err := page(c)
	if err != nil {
		return err
	}
	certs, total, err := s.cfg.SSH.ListHostCertificates(c.UserContext(), principal(c), c.Query("node"), pg)
	if err != nil {
		return err
	}
	return list(c, certs, pg, total)
}

func (s *Server) listSSHCertificates(c *fiber.Ctx) error {
	pg, err := page(c)
	if err != nil {
		return err
	}
	f := sshsign.Filter{UserID: c.Query("user"), NodeID: c.Query("node"), State: c.Query("state")}
	certs, total, err := s.cfg.SSH.ListCertificates(c.UserContext(), principal(c), f, pg)
	if err != nil {
		return err
	}
	return list(c, certs, pg, total)
}

func (s *Server) getSSHCertificate(c *fiber.Ctx) error {
	id, err := pathID(c, "id", "certificate")
	if err != nil {
		return err
	}
	cert, err := s.cfg.SSH.GetCertificate(c.UserContext(), principal(c), id)
	if err != nil {
		return err
	}
	return c.JSON(cert)
}

func (s *Server) revokeSSHCertificate(c *fiber.Ctx) error {
	id, err := pathID(c, "id", "certificate")
	if err != nil {
		return err
	}
	cert, err := s.cfg.SSH.RevokeCertificate(c.UserContext(), principal(c), id)
	if err != nil {
		return err
	}
	return c.JSON(cert)
}

func (s *Server) getSSHPolicy(c *fiber.Ctx) error {
	pol, err := s.cfg.SSH.GetPolicy(c.UserContext(), principal(c))
	if err != nil {
		return err
	}
	return c.JSON(pol)
}

func (s *Server) putSSHPolicy(c *fiber.Ctx) error {
	if err := need(principal(c), domain.PermSSHAdmin); err != nil {
		return err
	}
	var pol sshca.Policy
	if err := decode(c, &pol); err != nil {
		return err
	}
	out, err := s.cfg.SSH.SetPolicy(c.UserContext(), principal(c), pol)
	if err != nil {
		return err
	}
	return c.JSON(out)
}

// listSSHCAKeys lists user or host CA keys.
func (s *Server) listSSHCAKeys(list func(SSHCA, context.Context, *domain.Principal) ([]sshsign.CAKey, error)) fiber.Handler {
	return func(c *fiber.Ctx) error {
		keys, err := list(s.cfg.SSH, c.UserContext(), principal(c))
		if err != nil {
			return err
		}
		return c.JSON(fiber.Map{"data": keys})
	}
}

// caKeyBody is the optional body of POST /v1/ssh/ca/keys and the rotations.
type caKeyBody struct {
	Algorithm string `json:"algorithm"`
}

// sshCAKeyStep answers 201 with the new signing key.
func (s *Server) sshCAKeyStep(step func(SSHCA, context.Context, *domain.Principal, string) (sshsign.CAKey, error)) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if err := need(principal(c), domain.PermSSHAdmin); err != nil {
			return err
		}
		var body caKeyBody
		if len(c.Body()) > 0 {
			if err := decode(c, &body); err != nil {
				return err
			}
		}
		k, err := step(s.cfg.SSH, c.UserContext(), principal(c), body.Algorithm)
		if err != nil {
			return err
		}
		setAudit(c, k.ID.String(), nil)
		return c.Status(fiber.StatusCreated).JSON(k)
	}
}

// retireSSHCAKey retires a user or host CA key (what names it in errors).
func (s *Server) retireSSHCAKey(retire func(SSHCA, context.Context, *domain.Principal, uuid.UUID) (sshsign.CAKey, error), what string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		id, err := pathID(c, "id", what)
		if err != nil {
			return err
		}
		k, err := retire(s.cfg.SSH, c.UserContext(), principal(c), id)
		if err != nil {
			return err
		}
		return c.JSON(k)
	}
}
