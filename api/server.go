// Package api is shardform's HTTP surface: a Fiber app with routing, auth and
// organization middleware, strict decoding, rate limiting, audit logging and
// one error handler. Handlers are thin: decode, call a domain service, encode.
package api

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/recover"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/shardform/shardform/audit"
	"github.com/shardform/shardform/dashboard"
	"github.com/shardform/shardform/domain"
	"github.com/shardform/shardform/identity"
	"github.com/shardform/shardform/ratelimit"
	"github.com/shardform/shardform/tfstate"
)

// Accounts is what the API needs of the accounts domain (identity.Service).
type Accounts interface {
	Authenticate(ctx context.Context, credential string, orgID uuid.UUID) (*domain.Principal, error)
	NeedsBootstrap(ctx context.Context) (bool, error)
	Bootstrap(ctx context.Context, c identity.Credentials) (identity.NewAccount, error)
	Register(ctx context.Context, c identity.Credentials) (identity.NewAccount, error)
	Login(ctx context.Context, c identity.Credentials, clientIP string) (identity.LoginResult, error)
	Refresh(ctx context.Context, refreshToken string) (identity.Session, error)
	Logout(ctx context.Context, refreshToken string) error
	CompleteMFAChallenge(ctx context.Context, a identity.MFAChallengeAnswer) (identity.Session, error)
	MFAStatus(ctx context.Context, p *domain.Principal) (identity.MFAStatus, error)
	EnrollMFA(ctx context.Context, p *domain.Principal) (identity.MFAEnrollment, error)
	VerifyMFA(ctx context.Context, p *domain.Principal, code string) (identity.MFAStatus, error)
	DisableMFA(ctx context.Context, p *domain.Principal, code string) (identity.MFAStatus, error)
	GetMe(ctx context.Context, p *domain.Principal) (identity.Me, error)
	ChangePassword(ctx context.Context, p *domain.Principal, pc identity.PasswordChange) (identity.Session, error)
	ListUsers(ctx context.Context, p *domain.Principal, page domain.Page) ([]identity.User, int64, error)
	CreateUser(ctx context.Context, p *domain.Principal, c identity.Credentials, isAdmin bool) (identity.NewAccount, error)
	GetUser(ctx context.Context, p *domain.Principal, id uuid.UUID) (identity.User, error)
	DeleteUser(ctx context.Context, p *domain.Principal, id uuid.UUID) error
}

// APITokens is what the API needs to manage API tokens.
type APITokens interface {
	CreateAPIToken(ctx context.Context, p *domain.Principal, req identity.APITokenRequest) (identity.APIToken, error)
	ListAPITokens(ctx context.Context, p *domain.Principal, page domain.Page) ([]identity.APIToken, int64, error)
	DeleteAPIToken(ctx context.Context, p *domain.Principal, id uuid.UUID) error
}

// Organizations is what the API needs of organizations, members and invites.
type Organizations interface {
	CreateOrganization(ctx context.Context, p *domain.Principal, name string) (identity.Organization, error)
	ListOrganizations(ctx context.Context, p *domain.Principal, page domain.Page) ([]identity.Organization, int64, error)
	GetOrganization(ctx context.Context, p *domain.Principal, id uuid.UUID) (identity.Organization, error)
	UpdateOrganization(ctx context.Context, p *domain.Principal, id uuid.UUID, name string) (identity.Organization, error)
	DeleteOrganization(ctx context.Context, p *domain.Principal, id uuid.UUID) error
	ListMembers(ctx context.Context, p *domain.Principal, orgID uuid.UUID, page domain.Page) ([]identity.Member, int64, error)
	InviteMember(ctx context.Context, p *domain.Principal, orgID uuid.UUID, req identity.InviteRequest) (identity.Invite, error)
	ListInvites(ctx context.Context, p *domain.Principal, orgID uuid.UUID, page domain.Page) ([]identity.Invite, int64, error)
	DeleteInvite(ctx context.Context, p *domain.Principal, orgID, inviteID uuid.UUID) error
	AcceptInvite(ctx context.Context, p *domain.Principal, token string) (identity.Organization, error)
	RemoveMember(ctx context.Context, p *domain.Principal, orgID, userID uuid.UUID) error
	SetMemberRole(ctx context.Context, p *domain.Principal, orgID, userID uuid.UUID, role domain.Role) (identity.Member, error)
	GetMemberPermissions(ctx context.Context, p *domain.Principal, orgID, userID uuid.UUID) (identity.MemberPermissions, error)
	SetMemberGrants(ctx context.Context, p *domain.Principal, orgID, userID uuid.UUID, grants []domain.Permission) (identity.MemberPermissions, error)
	AddMemberGrant(ctx context.Context, p *domain.Principal, orgID, userID uuid.UUID, perm domain.Permission) (identity.MemberPermissions, error)
	RemoveMemberGrant(ctx context.Context, p *domain.Principal, orgID, userID uuid.UUID, perm domain.Permission) (identity.MemberPermissions, error)
}

// AuditLog records and lists audit entries.
type AuditLog interface {
	Record(ctx context.Context, e audit.Entry) error
	List(ctx context.Context, p *domain.Principal, page domain.Page) ([]audit.Entry, int64, error)
}

// Limiter counts requests per key in shared windows.
type Limiter interface {
	Hit(ctx context.Context, key string, limit int, window time.Duration) (ratelimit.Result, error)
}

// Health reports on the database and the queue.
type Health interface {
	Ping(ctx context.Context) error
	QueueDepth(ctx context.Context) (map[string]int64, error)
}

// Config is what New needs.
type Config struct {
	Accounts      Accounts
	APITokens     APITokens
	Organizations Organizations
	Audit         AuditLog
	Devices       Devices          // optional: without it the device-authorization routes are absent
	Provisioning  Provisioning     // optional: without it the provisioning routes are absent
	Credentials   Credentials      // optional: without it the credential routes are absent
	SSH           SSHCA            // optional: without it the SSH CA routes are absent
	Planner       Planner          // optional: without it the planner routes are absent
	Instances     Instances        // optional: without it the instance routes are absent
	DNS           DNS              // optional: without it the DNS routes are absent
	NodeOps       NodeOps          // optional: without it the power action routes are absent
	Agents        Agents           // optional: without it registration tokens and the /v1/agent routes are absent
	State         *tfstate.Service // optional: without it the Terraform state routes are absent
	Search        Searcher         // optional: without it the search routes are absent
	Limiter       Limiter
	Health        Health
	Logger        *slog.Logger
	Metrics       *prometheus.Registry // served at /metrics when set
	// RiverUI is River UI's handler (riverqueue.com/riverui, prefix
	// /riverui), served to platform administrators; nil leaves it out.
	RiverUI http.Handler
	Version string
	// PublicURL is the server's address as people reach it (SHARDFORM_PUBLIC_URL):
	// the device flow's verification URI is under it. Empty: the request's
	// scheme and host.
	PublicURL string
	// RateLimit is the number of requests per credential (or client address,
	// without one) per RateWindow. Default 600 per minute.
	RateLimit  int
	RateWindow time.Duration
	Now        func() time.Time
	// Unavailable names the queues this process cannot run (e.g.
	// "terraform": no binary), each with a reason safe to show publicly.
	Unavailable map[string]string
	// TrustedProxies are the addresses (IPs or CIDR ranges) of reverse
	// proxies whose X-Forwarded-Proto is believed: a dashboard session's
	// cookies are Secure when the request came over TLS, directly or
	// through one of them. Without any, X-Forwarded-Proto is ignored.
	TrustedProxies []string
	// NoDashboard leaves the web dashboard (/) out.
	NoDashboard bool
	// FollowHeartbeat is how often a live log stream (logs?follow=1) sends
	// an SSE comment while no line arrives, so a client that left is noticed.
	// Default 15 s.
	FollowHeartbeat time.Duration
	// Docs, when set, shares the OpenAPI documents built by the servers
	// of one process (tests, benchmarks and the cluster harness start many
	// servers with the same routes; the document takes a while to build).
	// Nil: each server builds its own, once.
	Docs *Docs
}

// Docs holds OpenAPI documents by what they describe (the version and the
// operations served). Safe for concurrent use.
type Docs struct {
	mu   sync.Mutex
	docs map[string]*docEntry
}

type docEntry struct {
	once sync.Once
	doc  *openAPI
	err  error
}

// NewDocs makes an empty document cache.
func NewDocs() *Docs { return &Docs{docs: map[string]*docEntry{}} }

// get builds the document for (version, ops) once.
func (d *Docs) get(version string, ops []operation) (*openAPI, error) {
	var key strings.Builder
	key.WriteString(version)
	for _, op := range ops {
		key.WriteString("\n" + op.key())
	}
	d.mu.Lock()
	e, ok := d.docs[key.String()]
	if !ok {
		e = &docEntry{}
		d.docs[key.String()] = e
	}
	d.mu.Unlock()
	e.once.Do(func() { e.doc, e.err = newOpenAPI(context.Background(), version, ops) })
	return e.doc, e.err
}

// Server is the HTTP API.
type Server struct {
	cfg     Config
	log     *slog.Logger
	app     *fiber.App
	metrics *httpMetrics

	matcher routeMatcher

	openapiOnce sync.Once
	openapi     *openAPI
	openapiErr  error

	// streams is cancelled when the server shuts down: long-lived streams
	// (live logs) end then instead of holding the shutdown.
	streams     context.Context
	stopStreams context.CancelFunc

	dashboard *dashboard.Dashboard // nil with NoDashboard
}

// New builds the Fiber app with every route.
func New(cfg Config) *Server {
	if cfg.RateLimit == 0 {
		cfg.RateLimit = 600
	}
	if cfg.RateWindow == 0 {
		cfg.RateWindow = time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler) // the caller passes its logger; none means quiet
	}
	if cfg.FollowHeartbeat <= 0 {
		cfg.FollowHeartbeat = 15 * time.Second
	}
	s := &Server{cfg: cfg, log: cfg.Logger}
	s.streams, s.stopStreams = context.WithCancel(context.Background())
	s.app = fiber.New(fiber.Config{
		AppName:               "shardform",
		ErrorHandler:          s.handleError,
		BodyLimit:             1 << 20,
		ReadTimeout:           30 * time.Second,
		IdleTimeout:           120 * time.Second,
		DisableStartupMessage: true,
		// X-Forwarded-Proto (c.Protocol) only from a configured proxy.
		EnableTrustedProxyCheck: true,
		TrustedProxies:          cfg.TrustedProxies,
	})
	if cfg.Metrics != nil {
		s.metrics = newHTTPMetrics(cfg.Metrics)
	}
	s.app.Use(s.requestLog)
	s.app.Use(recover.New())
	s.app.Use("/v1", s.auditLog)
	s.routes()
	if !cfg.NoDashboard {
		// The dashboard calls the /v1 routes above in process, with the
		// session's own token: the same handlers, checks and audit log.
		s.dashboard = dashboard.New(dashboard.Config{API: s.app.Handler(), Logger: cfg.Logger, Now: cfg.Now,
			Has: dashboard.Features{Provisioning: cfg.Provisioning != nil, Planner: cfg.Planner != nil, SSH: cfg.SSH != nil, DNS: cfg.DNS != nil}})
		s.dashboard.Mount(s.app)
	}
	if cfg.RiverUI != nil {
		s.riverUIRoutes(cfg.RiverUI)
	}
	if cfg.Metrics != nil {
		s.app.Get("/metrics", netHTTP(promhttp.HandlerFor(cfg.Metrics, promhttp.HandlerOpts{})))
	}
	s.app.Use(s.unmatched)
	return s
}

// openAPIDoc is the OpenAPI document of the routes this server registered,
// built once.
func (s *Server) openAPIDoc() (*openAPI, error) {
	s.openapiOnce.Do(func() {
		served := map[string]bool{}
		for _, r := range s.app.GetRoutes(true) {
			served[r.Method+" "+r.Path] = true
		}
		var ops []operation
		for _, op := range operations() {
			if served[op.key()] {
				ops = append(ops, op)
			}
		}
		if s.cfg.Docs != nil {
			s.openapi, s.openapiErr = s.cfg.Docs.get(s.cfg.Version, ops)
			return
		}
		s.openapi, s.openapiErr = newOpenAPI(context.Background(), s.cfg.Version, ops)
	})
	return s.openapi, s.openapiErr
}

// App returns the Fiber app (for Listen and for tests' app.Test).
func (s *Server) App() *fiber.App { return s.app }

// Listen serves on addr until ctx is cancelled, then shuts down gracefully.
func (s *Server) Listen(ctx context.Context, addr string) error {
	errc := make(chan error, 1)
	go func() { errc <- s.app.Listen(addr) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		return s.Shutdown(sctx)
	}
}

// Shutdown ends the open streams, then stops the app once every request
// has finished (or ctx ends).
func (s *Server) Shutdown(ctx context.Context) error {
	s.stopStreams()
	return s.app.ShutdownWithContext(ctx)
}

func (s *Server) routes() {
	a := s.app
	a.Get("/health", s.live)
	a.Get("/health/live", s.live)
	a.Get("/health/ready", s.ready)
	a.Get("/ready", s.ready)
	a.Get("/health/detailed", s.detailed)
	s.docsRoutes()

	v1 := a.Group("/v1")
	pub := s.publicLimit
	auth := s.authenticate

	v1.Get("/auth/bootstrap/status", pub, s.bootstrapStatus)
	v1.Post("/auth/bootstrap", pub, s.bootstrap)
	v1.Post("/auth/register", pub, s.register)
	v1.Post("/auth/login", pub, s.login)
	v1.Post("/auth/refresh", pub, s.refresh)
	v1.Post("/auth/logout", pub, s.logout)
	v1.Post("/auth/mfa/challenge", pub, s.mfaChallenge)
	v1.Get("/auth/mfa/status", auth, s.mfaStatus)
	v1.Post("/auth/mfa/enroll", auth, s.mfaEnroll)
	v1.Post("/auth/mfa/verify", auth, s.mfaVerify)
	v1.Post("/auth/mfa/disable", auth, s.mfaDisable)

	if s.cfg.Devices != nil {
		s.deviceRoutes(v1)
	}

	v1.Get("/whoami", auth, s.whoami)
	v1.Get("/users/me", auth, s.me)
	v1.Post("/users/me/password", auth, s.changePassword)
	v1.Get("/users", auth, s.listUsers)
	v1.Post("/users", auth, s.createUser)
	v1.Get("/users/:id", auth, s.getUser)
	v1.Delete("/users/:id", auth, s.deleteUser)

	v1.Get("/api-tokens", auth, s.listAPITokens)
	v1.Post("/api-tokens", auth, s.createAPIToken)
	v1.Delete("/api-tokens/:id", auth, s.deleteAPIToken)

	v1.Get("/permissions", auth, s.permissions)
	v1.Get("/organizations", auth, s.listOrganizations)
	v1.Post("/organizations", auth, s.createOrganization)
	v1.Get("/organizations/:id", auth, s.getOrganization)
	v1.Put("/organizations/:id", auth, s.updateOrganization)
	v1.Patch("/organizations/:id", auth, s.updateOrganization)
	v1.Delete("/organizations/:id", auth, s.deleteOrganization)
	v1.Get("/organizations/:id/members", auth, s.listMembers)
	v1.Post("/organizations/:id/members", auth, s.inviteMember)
	v1.Post("/organizations/:id/members/invite", auth, s.inviteMember) // the reference's name
	v1.Delete("/organizations/:id/members/:user_id", auth, s.removeMember)
	v1.Put("/organizations/:id/members/:user_id/role", auth, s.setMemberRole)
	v1.Get("/organizations/:id/members/:user_id/permissions", auth, s.getMemberPermissions)
	v1.Put("/organizations/:id/members/:user_id/permissions", auth, s.setMemberPermissions)
	v1.Post("/organizations/:id/members/:user_id/permissions", auth, s.addMemberPermission)
	v1.Delete("/organizations/:id/members/:user_id/permissions/:permission", auth, s.removeMemberPermission)
	v1.Get("/organizations/:id/invites", auth, s.listInvites)
	v1.Delete("/organizations/:id/invites/:invite_id", auth, s.deleteInvite)
	v1.Post("/invites/:token/accept", auth, s.acceptInvite)

	v1.Get("/admin/audit-logs", auth, s.listAuditLogs)

	if s.cfg.Search != nil {
		s.searchRoutes(v1)
	}
	if s.cfg.Agents != nil {
		// Before the provisioning routes: /v1/nodes/register-tokens is
		// not /v1/nodes/:id.
		s.agentRoutes(v1)
	}
	if s.cfg.Provisioning != nil {
		s.provisionRoutes(v1)
	}
	if s.cfg.Credentials != nil {
		s.credentialRoutes(v1)
	}
	if s.cfg.SSH != nil {
		s.sshRoutes(v1)
	}
	if s.cfg.Planner != nil {
		s.plannerRoutes(v1)
	}
	if s.cfg.Instances != nil {
		s.instanceRoutes(v1)
	}
	if s.cfg.State != nil {
		s.stateRoutes(v1)
	}
	if s.cfg.DNS != nil {
		s.dnsRoutes(v1)
	}
	if s.cfg.NodeOps != nil {
		s.nodeOpsRoutes(v1)
	}
}
