package api

import (
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/shardform/shardform/audit"
	"github.com/shardform/shardform/domain"
)

const (
	localRequestID   = "request_id"
	localPrincipal   = "principal"
	localAuditTarget = "audit_target"
	localAuditActor  = "audit_actor"
	localNoAudit     = "audit_skip"
	headerRequestID  = "X-Request-ID"
	headerOrgID      = "X-Organization-ID"
	headerAPIKey     = "X-API-Key"
)

var validRequestID = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

func requestID(c *fiber.Ctx) string {
	id, _ := c.Locals(localRequestID).(string)
	return id
}

// requestLog assigns the request id, runs the chain, answers errors through
// the error handler (so the logged status is the one sent) and logs one line.
func (s *Server) requestLog(c *fiber.Ctx) error {
	start := time.Now()
	id := c.Get(headerRequestID)
	if !validRequestID.MatchString(id) {
		id = uuid.NewString()
	}
	c.Locals(localRequestID, id)
	c.Set(headerRequestID, id)

	if err := c.Next(); err != nil {
		if herr := s.handleError(c, err); herr != nil {
			return herr
		}
	}
	status := c.Response().StatusCode()
	elapsed := time.Since(start)
	// Fiber reuses the bytes behind Method and Path for the next request:
	// every string kept (metric labels, log attributes) is a copy.
	method, route := strings.Clone(c.Method()), routeOf(c)
	if s.metrics != nil {
		s.metrics.observe(method, route, status, elapsed)
	}
	attrs := []slog.Attr{
		slog.String("request_id", id), slog.String("method", method), slog.String("route", route),
	}
	if c.Locals(localUnmatched) != nil {
		attrs = append(attrs, slog.String("path", loggedPath(c.Path())))
	}
	attrs = append(attrs, slog.Int("status", status), slog.Duration("duration", elapsed), slog.String("ip", strings.Clone(c.IP())))
	if p := principalOrNil(c); p != nil {
		attrs = append(attrs, slog.String("user_id", p.UserID.String()))
		if p.HasOrg {
			attrs = append(attrs, slog.String("organization_id", p.OrgID.String()))
		}
	}
	level := slog.LevelInfo
	if strings.HasPrefix(c.Path(), "/health") || c.Path() == "/ready" || c.Path() == "/metrics" {
		level = slog.LevelDebug
	}
	s.log.LogAttrs(c.UserContext(), level, "request", attrs...)
	return nil
}

// routeOf is the route pattern the request matched (a copy), never its
// path: a path parameter can be a secret (an invite token). A request that
// matched no route is "unmatched".
func routeOf(c *fiber.Ctx) string {
	if c.Locals(localUnmatched) != nil {
		return "unmatched"
	}
	return strings.Clone(c.Route().Path)
}

func principalOrNil(c *fiber.Ctx) *domain.Principal {
	p, _ := c.Locals(localPrincipal).(*domain.Principal)
	return p
}

// principal returns the authenticated caller (routes behind authenticate).
func principal(c *fiber.Ctx) *domain.Principal { return principalOrNil(c) }

// credential reads the bearer credential from Authorization or X-API-Key.
func credential(c *fiber.Ctx) string {
	return credentialOf(c.Get(fiber.HeaderAuthorization), c.Get(headerAPIKey))
}

// credentialOf is the credential of an Authorization and an X-API-Key header.
func credentialOf(authorization, apiKey string) string {
	if h := authorization; h != "" {
		if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
			return strings.TrimSpace(h[7:])
		}
		return h // answered 401 as invalid
	}
	return strings.TrimSpace(apiKey)
}

// authenticate resolves the credential and the organization, then applies
// the per-credential rate limit. A bad credential is counted against the
// client address, so guessing tokens is rate limited too.
func (s *Server) authenticate(c *fiber.Ctx) error {
	ctx := c.UserContext()
	orgID, err := orgHeader(c.Get(headerOrgID))
	if err != nil {
		if lerr := s.limit(c, "ip:"+c.IP()); lerr != nil {
			return lerr
		}
		return err
	}
	p, err := s.cfg.Accounts.Authenticate(ctx, credential(c), orgID)
	if err != nil {
		if lerr := s.limit(c, "ip:"+c.IP()); lerr != nil {
			return lerr
		}
		return err
	}
	key := "user:" + p.UserID.String()
	if p.ViaAPIToken() {
		key = "token:" + p.APITokenID.String()
	}
	c.Locals(localPrincipal, p)
	if err := s.limit(c, key); err != nil {
		return err
	}
	return c.Next()
}

// orgHeader is the organization an X-Organization-ID header names
// (uuid.Nil when it is empty: the caller's default).
func orgHeader(h string) (uuid.UUID, error) {
	if h == "" {
		return uuid.Nil, nil
	}
	return domain.ParseID(headerOrgID, h)
}

// publicLimit rate limits unauthenticated endpoints by client address.
func (s *Server) publicLimit(c *fiber.Ctx) error {
	if err := s.limit(c, "ip:"+c.IP()); err != nil {
		return err
	}
	return c.Next()
}

// limit counts one request for key and sets the X-RateLimit-* headers.
func (s *Server) limit(c *fiber.Ctx, key string) error {
	res, err := s.cfg.Limiter.Hit(c.UserContext(), "api:"+key, s.cfg.RateLimit, s.cfg.RateWindow)
	if err != nil {
		return err
	}
	c.Set("X-RateLimit-Limit", strconv.Itoa(res.Limit))
	c.Set("X-RateLimit-Remaining", strconv.Itoa(res.Remaining))
	c.Set("X-RateLimit-Reset", strconv.FormatInt(res.Reset.Unix(), 10))
	if !res.Allowed {
		return &domain.RateLimitedError{Reason: "rate limit exceeded", RetryAfter: res.RetryAfter(s.cfg.Now())}
	}
	return nil
}

// auditLog records every successful state-changing /v1 call, unless the
// handler handed its entry to the service that makes the change
// (auditedBy) or the call changes nothing (readOnly).
func (s *Server) auditLog(c *fiber.Ctx) error {
	err := c.Next()
	switch c.Method() {
	case fiber.MethodPost, fiber.MethodPut, fiber.MethodPatch, fiber.MethodDelete:
	default:
		return err
	}
	status := c.Response().StatusCode()
	if err != nil || status >= 400 || c.Locals(localNoAudit) != nil {
		return err
	}
	e := auditEntry(c, status)
	if t, ok := c.Locals(localAuditTarget).(string); ok {
		e.Target = t
	} else if id := c.Params("id"); id != "" {
		e.Target = id
	}
	if a, ok := c.Locals(localAuditActor).(actor); ok {
		e.UserID, e.OrganizationID = audit.Nullable(a.userID), audit.Nullable(a.orgID)
	}
	if rerr := s.cfg.Audit.Record(c.UserContext(), e); rerr != nil {
		// The change is done; losing its audit line must not turn it into a failure.
		s.log.ErrorContext(c.UserContext(), "audit log write failed", slog.String("request_id", e.RequestID), slog.Any("error", rerr))
	}
	return nil
}

// auditEntry is the audit entry of the call, without its target.
func auditEntry(c *fiber.Ctx, status int) audit.Entry {
	e := audit.Entry{
		Action: c.Method() + " " + c.Route().Path, Status: status, RequestID: requestID(c), IP: c.IP(),
	}
	if p := principalOrNil(c); p != nil {
		e.UserID, e.APITokenID = audit.Nullable(p.UserID), audit.Nullable(p.APITokenID)
		if p.HasOrg {
			e.OrganizationID = audit.Nullable(p.OrgID)
		}
	}
	return e
}

// auditedBy hands the call's audit entry (answered with status) to the
// service that makes the change, which writes it with the change itself:
// the middleware writes none.
func auditedBy(c *fiber.Ctx, status int) *audit.Entry {
	c.Locals(localNoAudit, true)
	e := auditEntry(c, status)
	return &e
}

// actor names who did a public state change (bootstrap, register, login).
type actor struct {
	userID, orgID uuid.UUID
}

// setAudit records the target (and, for public calls, the actor) of a change.
// readOnly marks a POST that changes nothing (a computation such as a
// planner recommendation): it is not written to the audit log.
func readOnly(c *fiber.Ctx) { c.Locals(localNoAudit, true) }

func setAudit(c *fiber.Ctx, target string, a *actor) {
	if target != "" {
		c.Locals(localAuditTarget, target)
	}
	if a != nil {
		c.Locals(localAuditActor, *a)
	}
}

// need refuses a caller without perm in the current organization.
func need(p *domain.Principal, perm domain.Permission) error {
	if !p.HasOrg {
		return domain.Forbidden("you belong to no organization")
	}
	if !p.Can(perm) {
		return domain.Forbidden("missing permission %s", perm)
	}
	return nil
}

type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newHTTPMetrics(reg *prometheus.Registry) *httpMetrics {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shardform_http_requests_total", Help: "HTTP requests by method, route and status.",
		}, []string{"method", "route", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "shardform_http_request_duration_seconds", Help: "HTTP request duration by method and route.",
			Buckets: prometheus.DefBuckets,
		}, []string{"method", "route"}),
	}
	reg.MustRegister(m.requests, m.duration)
	return m
}

func (m *httpMetrics) observe(method, route string, status int, d time.Duration) {
	m.requests.WithLabelValues(method, route, strconv.Itoa(status)).Inc()
	m.duration.WithLabelValues(method, route).Observe(d.Seconds())
}
