package api

import (
	"context"

	"github.com/gofiber/fiber/v2"

	"github.com/shardform/shardform/domain"
	"github.com/shardform/shardform/identity"
)

// Devices is what the API needs of the device-authorization grant (RFC
// 8628, `shardform login`; identity.Service).
type Devices interface {
	StartDevice(ctx context.Context, req identity.DeviceRequest, baseURL, clientIP string) (identity.DeviceAuthorization, error)
	PollDevice(ctx context.Context, req identity.DeviceTokenRequest) (identity.DeviceGrant, error)
	GetDevice(ctx context.Context, p *domain.Principal, userCode string) (identity.DevicePending, error)
	ApproveDevice(ctx context.Context, p *domain.Principal, req identity.DeviceApproveRequest) (identity.DeviceApproval, error)
	DenyDevice(ctx context.Context, p *domain.Principal, req identity.DeviceUserCode) (identity.DeviceDenial, error)
}

func (s *Server) deviceRoutes(v1 fiber.Router) {
	v1.Post("/auth/device", s.publicLimit, s.startDevice)
	v1.Post("/auth/device/token", s.publicLimit, s.pollDevice)
	v1.Get("/auth/device", s.authenticate, s.getDevice)
	v1.Post("/auth/device/approve", s.authenticate, s.approveDevice)
	v1.Post("/auth/device/deny", s.authenticate, s.denyDevice)
}

// publicBase is the server's address as people reach it: the configured
// public URL, else the request's scheme and host.
func (s *Server) publicBase(c *fiber.Ctx) string {
	if s.cfg.PublicURL != "" {
		return s.cfg.PublicURL
	}
	return c.BaseURL()
}

func (s *Server) startDevice(c *fiber.Ctx) error {
	var req identity.DeviceRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	out, err := s.cfg.Devices.StartDevice(c.UserContext(), req, s.publicBase(c), c.IP())
	if err != nil {
		return err
	}
	return c.JSON(out)
}

func (s *Server) pollDevice(c *fiber.Ctx) error {
	var req identity.DeviceTokenRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	g, err := s.cfg.Devices.PollDevice(c.UserContext(), req)
	if err != nil {
		return err
	}
	setAudit(c, g.Token.ID.String(), &actor{userID: g.UserID, orgID: g.Token.OrganizationID})
	return c.JSON(g.Token)
}

func (s *Server) getDevice(c *fiber.Ctx) error {
	out, err := s.cfg.Devices.GetDevice(c.UserContext(), principal(c), c.Query("user_code"))
	if err != nil {
		return err
	}
	return c.JSON(out)
}

func (s *Server) approveDevice(c *fiber.Ctx) error {
	var req identity.DeviceApproveRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	p := principal(c)
	out, err := s.cfg.Devices.ApproveDevice(c.UserContext(), p, req)
	if err != nil {
		return err
	}
	setAudit(c, out.ID.String(), &actor{userID: p.UserID, orgID: out.OrganizationID})
	return c.JSON(out)
}

func (s *Server) denyDevice(c *fiber.Ctx) error {
	var req identity.DeviceUserCode
	if err := decode(c, &req); err != nil {
		return err
	}
	out, err := s.cfg.Devices.DenyDevice(c.UserContext(), principal(c), req)
	if err != nil {
		return err
	}
	setAudit(c, out.ID.String(), nil)
	return c.JSON(out)
}
