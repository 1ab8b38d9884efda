package api

import (
	"github.com/gofiber/fiber/v2"

	"github.com/shardform/shardform/domain"
	"github.com/shardform/shardform/identity"
)

func (s *Server) me(c *fiber.Ctx) error {
	me, err := s.cfg.Accounts.GetMe(c.UserContext(), principal(c))
	if err != nil {
		return err
	}
	return c.JSON(me)
}

type whoamiBody struct {
	User         whoamiUser          `json:"user"`
	Organization *whoamiOrg          `json:"organization"`
	Scopes       []domain.Permission `json:"scopes"`
	AuthMethod   string              `json:"auth_method"`
	APITokenID   string              `json:"api_token_id,omitempty"`
}

type whoamiUser struct {
	ID      string `json:"id"`
	Email   string `json:"email"`
	IsAdmin bool   `json:"is_admin"`
}

type whoamiOrg struct {
	ID   string      `json:"id"`
	Role domain.Role `json:"role"`
}

func (s *Server) whoami(c *fiber.Ctx) error {
	p := principal(c)
	body := whoamiBody{
		User:       whoamiUser{ID: p.UserID.String(), Email: p.Email, IsAdmin: p.IsAdmin},
		Scopes:     p.Perms.Sorted(),
		AuthMethod: "access_token",
	}
	if p.HasOrg {
		body.Organization = &whoamiOrg{ID: p.OrgID.String(), Role: p.Role}
	}
	if p.ViaAPIToken() {
		body.AuthMethod = "api_token"
		body.APITokenID = p.APITokenID.String()
	}
	return c.JSON(body)
}

func (s *Server) changePassword(c *fiber.Ctx) error {
	var req identity.PasswordChange
	if err := decode(c, &req); err != nil {
		return err
	}
	sess, err := s.cfg.Accounts.ChangePassword(c.UserContext(), principal(c), req)
	if err != nil {
		return err
	}
	return c.JSON(sess)
}

func (s *Server) listUsers(c *fiber.Ctx) error {
	pg, err := page(c)
	if err != nil {
		return err
	}
	users, total, err := s.cfg.Accounts.ListUsers(c.UserContext(), principal(c), pg)
	if err != nil {
		return err
	}
	return list(c, users, pg, total)
}

type createUserRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
	IsAdmin  bool   `json:"is_admin"`
}

func (s *Server) createUser(c *fiber.Ctx) error {
	var req createUserRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	acct, err := s.cfg.Accounts.CreateUser(c.UserContext(), principal(c), identity.Credentials{Email: req.Email, Password: req.Password}, req.IsAdmin)
	if err != nil {
		return err
	}
	setAudit(c, acct.User.ID.String(), nil)
	return c.Status(fiber.StatusCreated).JSON(acct)
}

func (s *Server) getUser(c *fiber.Ctx) error {
	id, err := pathID(c, "id", "user")
	if err != nil {
		return err
	}
	u, err := s.cfg.Accounts.GetUser(c.UserContext(), principal(c), id)
	if err != nil {
		return err
	}
	return c.JSON(u)
}

func (s *Server) deleteUser(c *fiber.Ctx) error {
	id, err := pathID(c, "id", "user")
	if err != nil {
		return err
	}
	if err := s.cfg.Accounts.DeleteUser(c.UserContext(), principal(c), id); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

func (s *Server) listAPITokens(c *fiber.Ctx) error {
	pg, err := page(c)
	if err != nil {
		return err
	}
	toks, total, err := s.cfg.APITokens.ListAPITokens(c.UserContext(), principal(c), pg)
	if err != nil {
		return err
	}
	return list(c, toks, pg, total)
}

func (s *Server) createAPIToken(c *fiber.Ctx) error {
	var req identity.APITokenRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	tok, err := s.cfg.APITokens.CreateAPIToken(c.UserContext(), principal(c), req)
	if err != nil {
		return err
	}
	setAudit(c, tok.ID.String(), nil)
	return c.Status(fiber.StatusCreated).JSON(tok)
}

func (s *Server) deleteAPIToken(c *fiber.Ctx) error {
	id, err := pathID(c, "id", "API token")
	if err != nil {
		return err
	}
	if err := s.cfg.APITokens.DeleteAPIToken(c.UserContext(), principal(c), id); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

func (s *Server) listAuditLogs(c *fiber.Ctx) error {
	pg, err := page(c)
	if err != nil {
		return err
	}
	p := principal(c)
	if err := need(p, domain.PermAuditRead); err != nil {
		return err
	}
	entries, total, err := s.cfg.Audit.List(c.UserContext(), p, pg)
	if err != nil {
		return err
	}
	return list(c, entries, pg, total)
}
