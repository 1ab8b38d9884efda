// Command shardform is the shardform control plane (the HTTP API, the
// River workers, or both, against one Postgres) and its client (login,
// provision, nodes, planner, dns, ssh): one binary, commands built with
// github.com/spf13/cobra, one command (group) per cmd_*.go file.
//
//	shardform serve     API and workers in one process (default)
//	shardform api       the HTTP API only
//	shardform worker    the River workers only
//	shardform migrate   apply migrations and exit
//	shardform login     log in to a server (the client commands: shardform --help)
package main

import (
	"context"
	"crypto/hmac"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/riverqueue/river"
	"golang.org/x/sync/errgroup"
	"riverqueue.com/riverui"

	"github.com/shardform/shardform/agent"
	"github.com/shardform/shardform/api"
	"github.com/shardform/shardform/capacity"
	"github.com/shardform/shardform/credentials"
	"github.com/shardform/shardform/dns"
	"github.com/shardform/shardform/domain"
	"github.com/shardform/shardform/identity"
	"github.com/shardform/shardform/internal/app"
	"github.com/shardform/shardform/jobmetrics"
	"github.com/shardform/shardform/migrations"
	"github.com/shardform/shardform/nodeops"
	"github.com/shardform/shardform/placement"
	"github.com/shardform/shardform/provision"
	"github.com/shardform/shardform/seal"
	"github.com/shardform/shardform/sshca"
	"github.com/shardform/shardform/sshsign"
	"github.com/shardform/shardform/store"
	"github.com/shardform/shardform/terraform"
	"github.com/shardform/shardform/tfstate"
	"github.com/shardform/shardform/worker"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr))
}

// maxLoggedValue is the longest string value a log line carries: a longer
// one (an error quoting a huge input, say) is cut, so one request can never
// write a megabyte line.
const maxLoggedValue = 1024

// newLogger is the process's logger: text or JSON at the configured level,
// every string value at most maxLoggedValue bytes.
func newLogger(w io.Writer, cfg Config) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel, ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		switch a.Value.Kind() {
		case slog.KindString:
			if v := a.Value.String(); len(v) > maxLoggedValue {
				a.Value = slog.StringValue(domain.Truncate(v, maxLoggedValue))
			}
		case slog.KindAny:
			if err, ok := a.Value.Any().(error); ok && len(err.Error()) > maxLoggedValue {
				a.Value = slog.StringValue(domain.Truncate(err.Error(), maxLoggedValue))
			}
		}
		return a
	}}
	if cfg.LogJSON {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// openDatabase creates the database if needed and applies the migrations;
// withKey also loads the master key and checks it against the one the
// database was first started with.
func openDatabase(ctx context.Context, cfg *Config, withKey bool, log *slog.Logger) (*pgxpool.Pool, error) {
	if created, err := store.EnsureDatabase(ctx, cfg.DatabaseURL); err != nil {
		return nil, err
	} else if created {
		log.Info("created database", slog.String("url", redactURL(cfg.DatabaseURL)))
	}
	pool, err := store.Connect(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, err
	}
	var then func(context.Context) error
	if withKey {
		if err := loadMasterKey(cfg, log); err != nil {
			pool.Close()
			return nil, err
		}
		// Under the migration lock, after the SQL migrations: the key is
		// checked, then the pg backend's plain-text states are sealed
		// (sealing needs the key, which SQL has not).
		then = func(ctx context.Context) error {
			if err := checkMasterKey(ctx, pool, cfg.MasterKey); err != nil {
				return err
			}
			return importPGStates(ctx, pool, cfg.MasterKey, log)
		}
	}
	res, err := migrations.UpThen(ctx, pool, then)
	if err != nil {
		pool.Close()
		return nil, err
	}
	log.Info("migrations applied", slog.Any("app", res.App), slog.Any("river", res.River))
	return pool, nil
}

// importPGStates moves the old pg backend's states (terraform_state.states)
// into versioned, sealed states and deletes the plain-text rows once
// verified (tfstate.MigrateFromPG). A state that cannot be imported is
// logged and keeps its row; the process starts all the same, and the next
// start tries again.
func importPGStates(ctx context.Context, pool *pgxpool.Pool, key []byte, log *slog.Logger) error {
	sealer, err := seal.New(key)
	if err != nil {
		return err
	}
	svc := tfstate.New(store.NewStore(pool), sealer, time.Now, tfstate.Options{Logger: log.With(slog.String("subsystem", "tfstate"))})
	n, err := svc.MigrateFromPG(ctx, "")
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("import Terraform states of the pg backend: %w", err)
		}
		log.Error("some Terraform states of the pg backend were not imported: they stay in terraform_state.states", slog.Any("error", err))
	}
	if n > 0 {
		log.Info("imported Terraform states of the pg backend and deleted their plain-text rows", slog.Int("states", n))
	}
	return nil
}

// errMasterKeyMismatch is the one line a process started with the wrong key prints.
var errMasterKeyMismatch = errors.New("the master key does not match this database: set SHARDFORM_MASTER_KEY or SHARDFORM_DATA_DIR to the one it was created with")

// checkMasterKey stores the key's check value on the first start and
// refuses every later start with another key.
func checkMasterKey(ctx context.Context, pool *pgxpool.Pool, key []byte) error {
	mac, err := seal.KeyCheck(key)
	if err != nil {
		return err
	}
	stored, err := store.New().EnsureMasterKeyCheck(ctx, pool, mac)
	if store.IsNoRows(err) {
		// Another process stored its check between our insert and select
		// (both in one snapshot): a new statement sees it.
		stored, err = store.New().EnsureMasterKeyCheck(ctx, pool, mac)
	}
	if err != nil {
		return fmt.Errorf("check the master key: %w", err)
	}
	if !hmac.Equal(stored, mac) {
		return errMasterKeyMismatch
	}
	return nil
}

func serve(ctx context.Context, cmd string, cfg Config, pool *pgxpool.Pool, log *slog.Logger) error {
	st := store.NewStore(pool)
	runAPI, runWorkers := cmd != "worker", cmd != "api"
	sealer, err := seal.New(cfg.MasterKey)
	if err != nil {
		return err
	}
	var runner *terraform.Runner
	var noTerraform error // why this worker has no Terraform: the rest still runs
	if runWorkers {
		bin, err := terraform.FindBinary(ctx, cfg.TerraformPath, cfg.DataDir)
		if err == nil {
			runner, err = terraform.NewRunner(terraform.Config{Binary: bin, DataDir: cfg.DataDir, PluginMirror: cfg.PluginMirror, Path: cfg.Path, GracePeriod: cfg.CancelGrace})
		}
		if err != nil {
			noTerraform = fmt.Errorf("terraform is unavailable on this worker: set SHARDFORM_TERRAFORM_PATH to a terraform binary (or put terraform on PATH): %w", err)
			log.Error("terraform unavailable: provision jobs will fail until a worker with Terraform runs them",
				slog.String("setting", "SHARDFORM_TERRAFORM_PATH"), slog.Any("error", err))
		} else {
			log.Info("terraform", slog.String("binary", bin), slog.String("plugin_mirror", cfg.PluginMirror))
		}
	}
	registry, err := drivers(cfg, time.Now())
	if err != nil {
		return err
	}
	prov := provision.New(st, sealer, registry, runner, time.Now, log.With(slog.String("subsystem", "provision")))
	prov.UseWorkerName(cfg.WorkerName)
	prov.UsePlanRender(cfg.PlanRender)
	if noTerraform != nil {
		prov.WithoutTerraform(noTerraform)
	}
	stateSvc := tfstate.New(st, sealer, time.Now, tfstate.Options{KeepVersions: cfg.StateVersions, Logger: log.With(slog.String("subsystem", "tfstate"))})
	if runWorkers && runner != nil {
		// This process's runs reach the state store on loopback.
		lb, err := tfstate.ServeLoopback(ctx, stateSvc)
		if err != nil {
			return err
		}
		defer lb.Close()
		prov.UseState(stateSvc, lb.Base, cfg.TerraformTimeout+10*time.Minute)
	}
	creds := credentialStore(cfg, st, sealer, runner)
	nodeOps := nodeOpsService(cfg, st, sealer, log.With(slog.String("subsystem", "nodeops")))
	plan, err := plannerService(cfg, st, creds)
	if err != nil {
		return err
	}
	dnsSvc := dns.New(st, creds, dns.Options{Endpoint: cfg.CloudflareEndpoint, RateLimit: cfg.DNSRateLimit,
		ZoneCopyTTL: zoneCopyTTL(cfg.DNSZoneCache), Logger: log.With(slog.String("subsystem", "dns"))})
	prov.UseDNS(dnsSvc)
	prov.UsePower(nodeOps)
	nodeOps.UseDNS(dnsSvc)
	// This process's metrics: what the API serves at /metrics, or a
	// worker-only process at SHARDFORM_METRICS_ADDR.
	reg, signLatency := metricsRegistry(st, runner, log)
	// The SSH service's shared listener lives as long as the process serves.
	sshSvc, err := sshsign.New(st, sshca.NewVault(sealer), sshsign.Options{
		Context: ctx, Logger: log.With(slog.String("subsystem", "ssh")), Observe: signLatency.Observe})
	if err != nil {
		return err
	}
	defer sshSvc.Close()
	place := placement.New(st, placement.Config{Log: log.With(slog.String("subsystem", "placement"))})
	agents := agent.New(st, sshSvc, agent.Options{})
	agents.UseDNS(dnsSvc)
	if cfg.PublicURL != "" {
		prov.UseJoin(agents, cfg.PublicURL)
	}
	// Workers run River's own statements on a pool whose commits do not
	// wait for the disk (see store.QueuePool); an API-only process inserts
	// jobs in its own transactions on the main pool.
	queuePool := pool
	if runWorkers {
		if queuePool, err = store.QueuePool(ctx, pool); err != nil {
			return err
		}
		defer queuePool.Close()
	}
	dnsReconcile := cfg.DNSReconcileInterval
	if dnsReconcile == 0 {
		dnsReconcile = -1 // off
	}
	riverClient, err := worker.NewClient(queuePool, st, worker.Options{
		Work: runWorkers, Logger: log.With(slog.String("subsystem", "river")),
		Provision: prov, TerraformWorkers: cfg.TerraformWorkers, TerraformTimeout: cfg.TerraformTimeout,
		SSH: sshSvc, FetchPollInterval: 200 * time.Millisecond,
		Planner: plan, DriftInterval: cfg.DriftInterval, NodeOps: nodeOps,
		DNS: dnsSvc, DNSWorkers: cfg.DNSWorkers, DNSReconcileInterval: dnsReconcile,
		Placement: place,
		Agents:    agents,
	})
	if err != nil {
		return err
	}
	prov.UseQueue(riverClient)
	sshSvc.UseQueue(riverClient)
	plan.UseQueue(riverClient)
	dnsSvc.UseQueue(riverClient)
	nodeOps.UseQueue(riverClient)
	place.UseQueue(riverClient)
	g, gctx := errgroup.WithContext(ctx)
	if runWorkers {
		if err := riverClient.Start(gctx); err != nil {
			return fmt.Errorf("start workers: %w", err)
		}
		log.Info("workers started")
		if runner != nil {
			// Runs of dead workers (this process's included, before a
			// restart) are retried within seconds.
			g.Go(func() error { return prov.Watch(gctx, cfg.RescueInterval) })
		}
		// So are drains (SHARDFORM_RUN_RESCUE_INTERVAL too).
		g.Go(func() error { return place.Watch(gctx, cfg.RescueInterval) })
		g.Go(func() error {
			<-gctx.Done()
			stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			return stopRiver(stopCtx, riverClient)
		})
		if !runAPI && cfg.MetricsAddr != "" {
			log.Info("metrics listening", slog.String("addr", cfg.MetricsAddr))
			g.Go(func() error { return serveMetrics(gctx, cfg.MetricsAddr, reg) })
		}
	}
	if runAPI {
		var unavailable map[string]string
		if noTerraform != nil {
			unavailable = map[string]string{"terraform": "terraform binary not found on this process: set SHARDFORM_TERRAFORM_PATH"}
		}
		// River UI for platform administrators, at /riverui.
		ui, err := riverui.NewHandler(&riverui.HandlerOpts{Endpoints: riverui.NewEndpoints(riverClient, nil),
			Logger: log.With(slog.String("subsystem", "riverui")), Prefix: "/riverui"})
		if err != nil {
			return fmt.Errorf("river ui: %w", err)
		}
		if err := ui.Start(gctx); err != nil {
			return fmt.Errorf("river ui: %w", err)
		}
		srv, err := newAPI(cfg, st, prov, creds, sshSvc, agents, plan, dnsSvc, place, stateSvc, nodeOps, ui, unavailable, reg, log)
		if err != nil {
			return err
		}
		log.Info("API listening", slog.String("addr", cfg.Addr), slog.String("version", version))
		g.Go(func() error { return srv.Listen(gctx, cfg.Addr) })
	}
	err = g.Wait()
	log.Info("stopped")
	return err
}

func stopRiver(ctx context.Context, c *river.Client[pgx.Tx]) error {
	if err := c.Stop(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("stop workers: %w", err)
	}
	return nil
}

func newAPI(cfg Config, st *store.Store, prov *provision.Service, creds *credentials.Service, ssh *sshsign.Service, agents *agent.Service, plan *capacity.Service,
	dnsSvc *dns.Service, place *placement.Service, state *tfstate.Service, nodeOps *nodeops.Service, riverUI http.Handler, unavailable map[string]string,
	reg *prometheus.Registry, log *slog.Logger) (*api.Server, error) {
	return app.NewAPI(app.APIConfig{
		Store: st, MasterKey: cfg.MasterKey, Identity: identity.Options{AllowRegistration: cfg.AllowRegistration},
		RateLimit: cfg.RateLimit, Logger: log, Metrics: reg, Version: version, Provisioning: prov,
		Planner: plan, SSH: ssh, Credentials: creds, DNS: dnsSvc,
		Instances:   place,
		Unavailable: unavailable, State: state, NodeOps: nodeOps,
		Agents: agents, RiverUI: riverUI, PublicURL: cfg.PublicURL, TrustedProxies: cfg.TrustedProxies,
	})
}

// metricsRegistry is the process's registry: Go and process metrics, the
// job queue's (read from Postgres), this process's Terraform processes
// (runner nil: none) and its certificate signing latency.
func metricsRegistry(st *store.Store, runner *terraform.Runner, log *slog.Logger) (*prometheus.Registry, *jobmetrics.SignLatency) {
	reg := prometheus.NewRegistry()
	sign := jobmetrics.NewSignLatency()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		jobmetrics.New(st.Pool, log.With(slog.String("subsystem", "metrics"))), sign.Collector())
	if runner != nil {
		reg.MustRegister(jobmetrics.NewTerraform(runner.Stats))
	}
	return reg, sign
}

// serveMetrics serves reg at /metrics on addr until ctx ends (a worker
// process, which has no API to serve them).
func serveMetrics(ctx context.Context, addr string, reg *prometheus.Registry) error {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shut)
	}()
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("metrics: %w", err)
	}
	return nil
}

func redactURL(raw string) string {
	cfg, err := pgx.ParseConfig(raw)
	if err != nil {
		return "(invalid)"
	}
	return fmt.Sprintf("postgres://%s@%s:%d/%s", cfg.User, cfg.Host, cfg.Port, cfg.Database)
}

// zoneCopyTTL is SHARDFORM_DNS_ZONE_CACHE as dns.Options takes it (0 there
// is the default; negative, never trusted).
func zoneCopyTTL(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}
