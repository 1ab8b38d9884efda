package api

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/shardform/shardform/domain"
	"github.com/shardform/shardform/tfstate"
)

const statePrefix = "/v1/terraform/state"

// stateRoutes serves Terraform's http backend protocol (package tfstate) to
// runs (their credential), users reading a provision request's state
// (provision:read) and users' own Terraform (custom states, state:write).
func (s *Server) stateRoutes(v1 fiber.Router) {
	handler := http.StripPrefix(statePrefix, tfstate.Handler(s.cfg.State, s.stateAuthenticator(tfstate.RunAuthenticator(s.cfg.State))))
	h := netHTTP(handler)
	serve := func(c *fiber.Ctx) error {
		readOnly(c) // the data plane of Terraform runs: not written to the audit log
		return h(c)
	}
	pub := s.publicLimit
	for _, p := range []string{"/terraform/state/:id", "/terraform/state/custom/:name"} {
		v1.Get(p, pub, serve)
		v1.Post(p, pub, serve) // deleting a state is not a route: 405
		v1.Post(p+"/lock", pub, serve)
		v1.Delete(p+"/lock", pub, serve)
	}
	auth := s.authenticate
	v1.Get("/provision/:id/state/versions", auth, s.stateVersions)
	v1.Get("/provision/:id/state/versions/:n", auth, s.stateVersion)
}

// stateAuthenticator accepts a run's credential (HTTP Basic, the password
// shardform_run_...), or a user's: HTTP Basic with an API token as the
// password (what Terraform's http backend sends), a bearer token or
// X-API-Key. Users read a provision request's state with provision:read
// and never write it; custom states need state:write.
func (s *Server) stateAuthenticator(run tfstate.Authenticator) tfstate.Authenticator {
	return func(r *http.Request, target tfstate.Target) (tfstate.Grant, error) {
		_, pass, basic := r.BasicAuth()
		if basic && strings.HasPrefix(pass, tfstate.RunPasswordPrefix) {
			return run(r, target)
		}
		cred := pass
		if !basic {
			cred = credentialOf(r.Header.Get(fiber.HeaderAuthorization), r.Header.Get(headerAPIKey))
		}
		orgID, err := orgHeader(r.Header.Get(headerOrgID))
		if err != nil {
			return tfstate.Grant{}, err
		}
		p, err := s.cfg.Accounts.Authenticate(r.Context(), cred, orgID)
		if err != nil {
			return tfstate.Grant{}, err
		}
		if target.CustomName != "" {
			if err := need(p, domain.PermStateWrite); err != nil {
				return tfstate.Grant{}, err
			}
			return s.cfg.State.CustomGrant(r.Context(), p.OrgID, target.CustomName, true)
		}
		if err := need(p, domain.PermProvisionRead); err != nil {
			return tfstate.Grant{}, err
		}
		g, err := s.cfg.State.ProvisionGrant(r.Context(), p.OrgID, target.ProvisionID)
		if err != nil {
			return tfstate.Grant{}, err
		}
		if r.Method != http.MethodGet {
			return tfstate.Grant{}, domain.Forbidden("a provision request's state is written by its runs alone: users may read it")
		}
		return g, nil
	}
}

type stateVersionsBody struct {
	Data []tfstate.Version `json:"data"`
}

func (s *Server) stateVersions(c *fiber.Ctx) error {
	p := principal(c)
	if err := need(p, domain.PermProvisionRead); err != nil {
		return err
	}
	id, err := pathID(c, "id", "provision request")
	if err != nil {
		return err
	}
	vs, err := s.cfg.State.Versions(c.UserContext(), p.OrgID, id)
	if err != nil {
		return err
	}
	return c.JSON(stateVersionsBody{Data: vs})
}

// stateVersion downloads one version, decrypted (Terraform's state JSON).
func (s *Server) stateVersion(c *fiber.Ctx) error {
	p := principal(c)
	if err := need(p, domain.PermProvisionRead); err != nil {
		return err
	}
	id, err := pathID(c, "id", "provision request")
	if err != nil {
		return err
	}
	n, err := strconv.Atoi(c.Params("n"))
	if err != nil || n < 1 {
		return domain.Invalid("n", "must be a version number (1 or more)")
	}
	_, data, err := s.cfg.State.ReadVersion(c.UserContext(), p.OrgID, id, n)
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return c.Send(data)
}
