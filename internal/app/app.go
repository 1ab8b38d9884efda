// Package app wires shardform's pieces together once: the command, the API
// tests and the benchmarks build the API the same way.
package app

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shardform/shardform/api"
	"github.com/shardform/shardform/audit"
	"github.com/shardform/shardform/identity"
	"github.com/shardform/shardform/ratelimit"
	"github.com/shardform/shardform/seal"
	"github.com/shardform/shardform/search"
	"github.com/shardform/shardform/store"
	"github.com/shardform/shardform/tfstate"
)

// APIConfig is what NewAPI needs.
type APIConfig struct {
	Store     *store.Store
	MasterKey []byte
	Identity  identity.Options
	RateLimit int // requests per credential per minute; 0: the API's default
	Logger    *slog.Logger
	Metrics   *prometheus.Registry
	Version   string
	Now       func() time.Time // default time.Now
	// Provisioning serves /v1/provision and /v1/nodes; nil leaves them out.
	Provisioning api.Provisioning
	// Credentials serves /v1/credentials (credentials.Service); nil leaves it out.
	Credentials api.Credentials
	// Planner serves /v1/planner; nil leaves it out.
	Planner api.Planner
	// Instances serves /v1/instances (placement.Service); nil leaves it out.
	Instances api.Instances
	// NodeOps serves the power actions under /v1/nodes/{id} (nodeops.Service); nil leaves them out.
	NodeOps api.NodeOps
	// SSH serves /v1/ssh (sshsign.Service); nil leaves it out.
	SSH api.SSHCA
	// DNS serves /v1/dns (dns.Service); nil leaves it out.
	DNS api.DNS
	// RiverUI is River UI's handler, served to platform administrators at /riverui; nil leaves it out.
	RiverUI http.Handler
	// Docs shares OpenAPI documents between the servers of one process (api.NewDocs); nil: each builds its own.
	Docs *api.Docs
	// Agents serves registration tokens and /v1/agent (agent.Service); nil leaves them out.
	Agents api.Agents
	// State serves /v1/terraform/state and the state versions (tfstate.Service); nil leaves them out.
	State *tfstate.Service
	// Unavailable names the queues this process cannot run, with a public
	// reason; /health/ready reports them.
	Unavailable map[string]string
	// FollowHeartbeat is api.Config.FollowHeartbeat (0: its default).
	FollowHeartbeat time.Duration
	// PublicURL is api.Config.PublicURL (SHARDFORM_PUBLIC_URL).
	PublicURL string
}

// NewAPI builds the domain services and the HTTP API on them.
func NewAPI(cfg APIConfig) (*api.Server, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	sealer, err := seal.New(cfg.MasterKey)
	if err != nil {
		return nil, err
	}
	limiter := ratelimit.New(cfg.Store.Pool, cfg.Now)
	accounts, err := identity.New(cfg.Store, cfg.MasterKey, sealer, limiter, cfg.Now, cfg.Identity)
	if err != nil {
		return nil, err
	}
	src := search.Sources{Audit: audit.New(cfg.Store), Members: accounts}
	src.Provisioning, _ = cfg.Provisioning.(search.Provisioning)
	src.Instances, _ = cfg.Instances.(search.Instances)
	src.Credentials, _ = cfg.Credentials.(search.Credentials)
	src.Certificates, _ = cfg.SSH.(search.Certificates)
	src.DNS, _ = cfg.DNS.(search.DNS)
	return api.New(api.Config{
		Accounts: accounts, APITokens: accounts, Organizations: accounts, Devices: accounts, PublicURL: cfg.PublicURL,
		Audit: audit.New(cfg.Store), Limiter: limiter, Health: cfg.Store,
		Logger: cfg.Logger, Metrics: cfg.Metrics, Version: cfg.Version,
		RateLimit: cfg.RateLimit, Now: cfg.Now, Provisioning: cfg.Provisioning,
		Planner: cfg.Planner, SSH: cfg.SSH, Credentials: cfg.Credentials,
		Instances: cfg.Instances, DNS: cfg.DNS, NodeOps: cfg.NodeOps, Unavailable: cfg.Unavailable, State: cfg.State, FollowHeartbeat: cfg.FollowHeartbeat,
		Agents: cfg.Agents, RiverUI: cfg.RiverUI, Docs: cfg.Docs, Search: search.New(cfg.Store.Pool, src),
	}), nil
}
