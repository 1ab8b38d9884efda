// Command shardform is the shardform control plane: the HTTP API, the River
// workers, or both, against one Postgres.
//
//	shardform serve     API and workers in one process (default)
//	shardform api       the HTTP API only
//	shardform worker    the River workers only
//	shardform migrate   apply migrations and exit
//	shardform version   print the version
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/riverqueue/river"
	"golang.org/x/sync/errgroup"

	"github.com/shardform/shardform/api"
	"github.com/shardform/shardform/capacity"
	"github.com/shardform/shardform/credentials"
	"github.com/shardform/shardform/identity"
	"github.com/shardform/shardform/internal/app"
	"github.com/shardform/shardform/migrations"
	"github.com/shardform/shardform/placement"
	"github.com/shardform/shardform/provision"
	"github.com/shardform/shardform/seal"
	"github.com/shardform/shardform/sshca"
	"github.com/shardform/shardform/sshsign"
	"github.com/shardform/shardform/store"
	"github.com/shardform/shardform/terraform"
	"github.com/shardform/shardform/worker"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `usage: shardform [serve|api|worker|migrate|version]

  serve     run the API and the workers in one process (default)
  api       run the HTTP API only
  worker    run the River workers only
  migrate   apply database migrations and exit
  ssh sign  get a short-lived SSH certificate (SHARDFORM_URL, SHARDFORM_TOKEN)
  ssh configure  save the server URL and API token for shardform ssh
  version   print the version

Configuration is read from SHARDFORM_* environment variables (see README).`

func main() {
	cmd := "serve"
	if len(os.Args) > 1 {
		cmd = os.Args[1]
	}
	if err := run(cmd); err != nil {
		fmt.Fprintln(os.Stderr, "shardform:", err)
		os.Exit(1)
	}
}

func run(cmd string) error {
	switch cmd {
	case "serve", "api", "worker", "migrate":
	case "version":
		fmt.Println(version)
		return nil
	case "ssh":
		return runSSH(context.Background(), os.Args[2:], os.Getenv, os.Stdout)
	case "help", "-h", "--help":
		fmt.Println(usage)
		return nil
	default:
		return fmt.Errorf("unknown command %q\n%s", cmd, usage)
	}
	cfg, err := loadConfig(os.Getenv)
	if err != nil {
		return err
	}
	var handler slog.Handler = slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.LogLevel})
	if cfg.LogJSON {
		handler = slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.LogLevel})
	}
	log := slog.New(handler).With(slog.String("component", cmd))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if created, err := store.EnsureDatabase(ctx, cfg.DatabaseURL); err != nil {
		return err
	} else if created {
		log.Info("created database", slog.String("url", redactURL(cfg.DatabaseURL)))
	}
	pool, err := store.Connect(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	res, err := migrations.Up(ctx, pool)
	if err != nil {
		return err
	}
	log.Info("migrations applied", slog.Any("app", res.App), slog.Any("river", res.River))
	if cmd == "migrate" {
		return nil
	}
	if err := loadMasterKey(&cfg, log); err != nil {
		return err
	}
	return serve(ctx, cmd, cfg, pool, log)
}

func serve(ctx context.Context, cmd string, cfg Config, pool *pgxpool.Pool, log *slog.Logger) error {
	st := store.NewStore(pool)
	runAPI, runWorkers := cmd != "worker", cmd != "api"
	sealer, err := seal.New(cfg.MasterKey)
	if err != nil {
		return err
	}
	var runner *terraform.Runner
	if runWorkers {
		bin, err := terraform.FindBinary(ctx, cfg.TerraformPath, cfg.DataDir)
		if err != nil {
			return fmt.Errorf("SHARDFORM_TERRAFORM_PATH: %w", err)
		}
		runner, err = terraform.NewRunner(terraform.Config{Binary: bin, DataDir: cfg.DataDir, PluginMirror: cfg.PluginMirror, DatabaseURL: cfg.DatabaseURL}, pool)
		if err != nil {
			return err
		}
		log.Info("terraform", slog.String("binary", bin), slog.String("plugin_mirror", cfg.PluginMirror))
	}
	registry, err := drivers(cfg, time.Now())
	if err != nil {
		return err
	}
	prov := provision.New(st, sealer, registry, runner, time.Now)
	creds := credentialStore(cfg, st, sealer, runner)
	plan, err := plannerService(cfg, st, creds)
	if err != nil {
		return err
	}
	sshSvc, err := sshsign.New(st, sshca.NewVault(sealer), sshsign.Options{})
	if err != nil {
		return err
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
	riverClient, err := worker.NewClient(queuePool, st, worker.Options{
		Work: runWorkers, Logger: log.With(slog.String("subsystem", "river")),
		Provision: prov, TerraformWorkers: cfg.TerraformWorkers, TerraformTimeout: cfg.TerraformTimeout,
		SSH: sshSvc, FetchPollInterval: 200 * time.Millisecond,
		Planner: plan,
	})
	if err != nil {
		return err
	}
	prov.UseQueue(riverClient)
	sshSvc.UseQueue(riverClient)
	plan.UseQueue(riverClient)
	g, gctx := errgroup.WithContext(ctx)
	if runWorkers {
		if err := riverClient.Start(gctx); err != nil {
			return fmt.Errorf("start workers: %w", err)
		}
		log.Info("workers started")
		g.Go(func() error {
			<-gctx.Done()
			stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			return stopRiver(stopCtx, riverClient)
		})
	}
	if runAPI {
		srv, err := newAPI(cfg, st, prov, creds, sshSvc, plan, log)
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

func newAPI(cfg Config, st *store.Store, prov *provision.Service, creds *credentials.Service, ssh *sshsign.Service, plan *capacity.Service, log *slog.Logger) (*api.Server, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return app.NewAPI(app.APIConfig{
		Store: st, MasterKey: cfg.MasterKey, Identity: identity.Options{AllowRegistration: cfg.AllowRegistration},
		RateLimit: cfg.RateLimit, Logger: log, Metrics: reg, Version: version, Provisioning: prov,
		Planner: plan, SSH: ssh, Credentials: creds,
		Instances: placement.New(st, placement.Config{}),
	})
}

func redactURL(raw string) string {
	cfg, err := pgx.ParseConfig(raw)
	if err != nil {
		return "(invalid)"
	}
	return fmt.Sprintf("postgres://%s@%s:%d/%s", cfg.User, cfg.Host, cfg.Port, cfg.Database)
}
