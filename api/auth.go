package api

import (
	"context"

	"github.com/gofiber/fiber/v2"

	"github.com/shardform/shardform/identity"
)

func (s *Server) bootstrapStatus(c *fiber.Ctx) error {
	needs, err := s.cfg.Accounts.NeedsBootstrap(c.UserContext())
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"needs_bootstrap": needs})
}

func (s *Server) bootstrap(c *fiber.Ctx) error {
	return s.createAccount(c, s.cfg.Accounts.Bootstrap)
}

func (s *Server) register(c *fiber.Ctx) error {
	return s.createAccount(c, s.cfg.Accounts.Register)
}

func (s *Server) createAccount(c *fiber.Ctx, create func(context.Context, identity.Credentials) (identity.NewAccount, error)) error {
	var req identity.Credentials
	if err := decode(c, &req); err != nil {
		return err
	}
	acct, err := create(c.UserContext(), req)
	if err != nil {
		return err
	}
	setAudit(c, acct.User.ID.String(), &actor{userID: acct.User.ID, orgID: acct.Organization.ID})
	return c.Status(fiber.StatusCreated).JSON(acct)
}

// loginBody answers a login: a session, or an MFA challenge.
type loginBody struct {
	*identity.Session
	MFARequired    bool   `json:"mfa_required,omitempty"`
	ChallengeToken string `json:"challenge_token,omitempty"`
}

func (s *Server) login(c *fiber.Ctx) error {
	var req identity.Credentials
	if err := decode(c, &req); err != nil {
		return err
	}
	res, err := s.cfg.Accounts.Login(c.UserContext(), req, c.IP())
	if err != nil {
		return err
	}
	return c.JSON(loginBody{Session: res.Session, MFARequired: res.MFARequired, ChallengeToken: res.ChallengeToken})
}

type refreshRequest struct {
	RefreshToken string `json:"refresh_token"`
}

func (s *Server) refresh(c *fiber.Ctx) error {
	var req refreshRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	sess, err := s.cfg.Accounts.Refresh(c.UserContext(), req.RefreshToken)
	if err != nil {
		return err
	}
	return c.JSON(sess)
}

func (s *Server) logout(c *fiber.Ctx) error {
	var req refreshRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	if err := s.cfg.Accounts.Logout(c.UserContext(), req.RefreshToken); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

func (s *Server) mfaChallenge(c *fiber.Ctx) error {
	var req identity.MFAChallengeAnswer
	if err := decode(c, &req); err != nil {
		return err
	}
	sess, err := s.cfg.Accounts.CompleteMFAChallenge(c.UserContext(), req)
	if err != nil {
		return err
	}
	return c.JSON(sess)
}

func (s *Server) mfaStatus(c *fiber.Ctx) error {
	st, err := s.cfg.Accounts.MFAStatus(c.UserContext(), principal(c))
	if err != nil {
		return err
	}
	return c.JSON(st)
}

func (s *Server) mfaEnroll(c *fiber.Ctx) error {
	e, err := s.cfg.Accounts.EnrollMFA(c.UserContext(), principal(c))
	if err != nil {
		return err
	}
	return c.JSON(e)
}

type codeRequest struct {
	Code string `json:"code"`
}

func (s *Server) mfaVerify(c *fiber.Ctx) error {
	var req codeRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	st, err := s.cfg.Accounts.VerifyMFA(c.UserContext(), principal(c), req.Code)
	if err != nil {
		return err
	}
	return c.JSON(st)
}

func (s *Server) mfaDisable(c *fiber.Ctx) error {
	var req codeRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	st, err := s.cfg.Accounts.DisableMFA(c.UserContext(), principal(c), req.Code)
	if err != nil {
		return err
	}
	return c.JSON(st)
}
