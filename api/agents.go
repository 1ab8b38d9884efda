package api

import (
	"context"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/shardform/shardform/agent"
	"github.com/shardform/shardform/domain"
)

// headerAgentToken carries a node's agent token (shardform_agent_...).
const headerAgentToken = "X-Agent-Token"

// localAgent holds the authenticated agent of an /v1/agent request.
const localAgent = "agent"

// Agents is what the API needs of the node agents' domain (agent.Service).
type Agents interface {
	CreateToken(ctx context.Context, p *domain.Principal, req agent.TokenRequest) (agent.RegistrationToken, error)
	ListTokens(ctx context.Context, p *domain.Principal, page domain.Page) ([]agent.RegistrationToken, int64, error)
	DeleteToken(ctx context.Context, p *domain.Principal, id uuid.UUID) error
	ListAgents(ctx context.Context, p *domain.Principal, page domain.Page) ([]agent.AgentInfo, int64, error)
	NodeInventory(ctx context.Context, p *domain.Principal, nodeID uuid.UUID, part string) (agent.Inventory, error)

	Register(ctx context.Context, token string, req agent.RegisterRequest) (agent.Registration, error)
	Authenticate(ctx context.Context, token string) (agent.Agent, error)
	Node(ctx context.Context, a agent.Agent) (agent.NodeRecord, error)
	UserCAKeys(ctx context.Context, a agent.Agent) ([]byte, error)
	KRL(ctx context.Context, a agent.Agent) ([]byte, error)
	KnownHosts(ctx context.Context, a agent.Agent) ([]byte, error)
	RenewHostCertificates(ctx context.Context, a agent.Agent, req agent.RenewRequest) (agent.Renewal, error)
	RecordHeartbeat(ctx context.Context, a agent.Agent, hb agent.Heartbeat) (agent.HeartbeatAnswer, error)
	RotateToken(ctx context.Context, a agent.Agent) (agent.RotatedToken, error)
}

func (s *Server) agentRoutes(v1 fiber.Router) {
	auth, pub, node := s.authenticate, s.publicLimit, s.authenticateAgent
	v1.Post("/nodes/register-token", auth, s.createRegistrationToken)
	v1.Get("/nodes/register-tokens", auth, s.listRegistrationTokens)
	v1.Delete("/nodes/register-tokens/:id", auth, s.deleteRegistrationToken)
	v1.Get("/admin/agents", auth, s.listAgents)
	v1.Get("/nodes/:id/inventory", auth, s.nodeInventory(""))
	for _, part := range []string{"system", "network", "disks"} {
		v1.Get("/nodes/:id/inventory/"+part, auth, s.nodeInventory(part))
	}

	v1.Post("/agent/register", pub, s.registerAgent)
	v1.Get("/agent/bootstrap.sh", pub, func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderContentType, "text/x-shellscript; charset=utf-8")
		return c.Send(agent.BootstrapScript())
	})
	v1.Get("/agent/node", node, s.agentNode)
	v1.Get("/agent/ssh/ca-public-key", node, s.agentFile(Agents.UserCAKeys, fiber.MIMETextPlainCharsetUTF8, false))
	// A KRL carries the time it was made: its ETag is of the list alone.
	v1.Get("/agent/ssh/krl", node, s.agentFile(Agents.KRL, fiber.MIMEOctetStream, true))
	v1.Get("/agent/ssh/known-hosts", node, s.agentFile(Agents.KnownHosts, fiber.MIMETextPlainCharsetUTF8, false))
	v1.Post("/agent/host-certificates", node, s.renewHostCertificates)
	v1.Post("/agent/heartbeat", node, s.agentHeartbeat)
	v1.Post("/agent/token/rotate", node, s.rotateAgentToken)
}

// authenticateAgent resolves X-Agent-Token; only the /v1/agent routes use
// it, and no other route reads that header, so an agent token opens nothing
// else. A bad token is rate limited by client address, like a bad bearer.
func (s *Server) authenticateAgent(c *fiber.Ctx) error {
	a, err := s.cfg.Agents.Authenticate(c.UserContext(), strings.TrimSpace(c.Get(headerAgentToken)))
	if err != nil {
		if lerr := s.limit(c, "ip:"+c.IP()); lerr != nil {
			return lerr
		}
		return err
	}
	c.Locals(localAgent, a)
	if err := s.limit(c, "agent:"+a.NodeID.String()); err != nil {
		return err
	}
	return c.Next()
}

func agentOf(c *fiber.Ctx) agent.Agent {
	a, _ := c.Locals(localAgent).(agent.Agent)
	return a
}

func (s *Server) createRegistrationToken(c *fiber.Ctx) error {
	var req agent.TokenRequest
	if len(c.Body()) > 0 {
		if err := decode(c, &req); err != nil {
			return err
		}
	}
	t, err := s.cfg.Agents.CreateToken(c.UserContext(), principal(c), req)
	if err != nil {
		return err
	}
	setAudit(c, t.ID.String(), nil)
	return c.Status(fiber.StatusCreated).JSON(t)
}

func (s *Server) listRegistrationTokens(c *fiber.Ctx) error {
	pg, err := page(c)
	if err != nil {
		return err
	}
	out, total, err := s.cfg.Agents.ListTokens(c.UserContext(), principal(c), pg)
	if err != nil {
		return err
	}
	return list(c, out, pg, total)
}

func (s *Server) deleteRegistrationToken(c *fiber.Ctx) error {
	id, err := pathID(c, "id", "registration token")
	if err != nil {
		return err
	}
	if err := s.cfg.Agents.DeleteToken(c.UserContext(), principal(c), id); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

func (s *Server) listAgents(c *fiber.Ctx) error {
	pg, err := page(c)
	if err != nil {
		return err
	}
	out, total, err := s.cfg.Agents.ListAgents(c.UserContext(), principal(c), pg)
	if err != nil {
		return err
	}
	return list(c, out, pg, total)
}

// nodeInventory answers the inventory of a node's latest heartbeat, or one part.
func (s *Server) nodeInventory(part string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		id, err := pathID(c, "id", "node")
		if err != nil {
			return err
		}
		inv, err := s.cfg.Agents.NodeInventory(c.UserContext(), principal(c), id, part)
		if err != nil {
			return err
		}
		return c.JSON(inv)
	}
}

// registerAgent takes the registration token as Authorization: Bearer.
func (s *Server) registerAgent(c *fiber.Ctx) error {
	token := credentialOf(c.Get(fiber.HeaderAuthorization), "")
	if token == "" {
		return domain.Unauthenticated("missing registration token: send Authorization: Bearer shardform_reg_...")
	}
	var req agent.RegisterRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	out, err := s.cfg.Agents.Register(c.UserContext(), token, req)
	if err != nil {
		return err
	}
	setAudit(c, out.Node.ID.String(), &actor{orgID: out.Node.OrganizationID})
	return c.Status(fiber.StatusCreated).JSON(out)
}

func (s *Server) agentNode(c *fiber.Ctx) error {
	n, err := s.cfg.Agents.Node(c.UserContext(), agentOf(c))
	if err != nil {
		return err
	}
	return c.JSON(n)
}

// agentFile serves a trust file with an ETag: a node asking with
// If-None-Match of the file it has is answered 304 without the file.
// krl: the file is a KRL (see agent.ETag).
func (s *Server) agentFile(get func(Agents, context.Context, agent.Agent) ([]byte, error), contentType string, krl bool) fiber.Handler {
	return func(c *fiber.Ctx) error {
		body, err := get(s.cfg.Agents, c.UserContext(), agentOf(c))
		if err != nil {
			return err
		}
		etag := agent.ETag(body, krl)
		c.Set(fiber.HeaderETag, etag)
		c.Set(fiber.HeaderCacheControl, "no-cache")
		if etagMatches(c.Get(fiber.HeaderIfNoneMatch), etag) {
			return c.SendStatus(fiber.StatusNotModified)
		}
		c.Set(fiber.HeaderContentType, contentType)
		return c.Send(body)
	}
}

// etagMatches reports whether an If-None-Match header names etag (weak
// comparison, as RFC 9110 asks for If-None-Match).
func etagMatches(header, etag string) bool {
	for _, v := range strings.Split(header, ",") {
		v = strings.TrimPrefix(strings.TrimSpace(v), "W/")
		if v == "*" || v == etag {
			return true
		}
	}
	return false
}

func (s *Server) renewHostCertificates(c *fiber.Ctx) error {
	var req agent.RenewRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	a := agentOf(c)
	out, err := s.cfg.Agents.RenewHostCertificates(c.UserContext(), a, req)
	if err != nil {
		return err
	}
	setAudit(c, a.NodeID.String(), &actor{orgID: a.OrganizationID})
	return c.JSON(out)
}

func (s *Server) agentHeartbeat(c *fiber.Ctx) error {
	var hb agent.Heartbeat
	if len(c.Body()) > 0 {
		if err := decode(c, &hb); err != nil {
			return err
		}
	}
	// A heartbeat a minute per node is not an audit event.
	readOnly(c)
	out, err := s.cfg.Agents.RecordHeartbeat(c.UserContext(), agentOf(c), hb)
	if err != nil {
		return err
	}
	return c.JSON(out)
}

func (s *Server) rotateAgentToken(c *fiber.Ctx) error {
	a := agentOf(c)
	out, err := s.cfg.Agents.RotateToken(c.UserContext(), a)
	if err != nil {
		return err
	}
	setAudit(c, a.NodeID.String(), &actor{orgID: a.OrganizationID})
	return c.JSON(out)
}
