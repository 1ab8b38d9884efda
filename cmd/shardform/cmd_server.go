package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"
)

// serverCommands are the commands that run against the database.
func (c *cli) serverCommands() []*cobra.Command {
	var out []*cobra.Command
	for _, s := range []struct{ name, short string }{
		{"serve", "Runs the HTTP API and the River workers in one process."},
		{"api", "Runs the HTTP API only (jobs are inserted; worker processes run them)."},
		{"worker", "Runs the River workers only."},
		{"migrate", "Applies the database migrations and exits."},
	} {
		name := s.name
		cmd := &cobra.Command{
			Use:   name + " [flags]",
			Short: s.short,
			Long:  s.short + " Every setting is also read from its\nSHARDFORM_* environment variable (README: Configuration); a flag wins.",
			Args:  noArgs,
		}
		f := cmd.Flags()
		overrides := map[string]*string{
			"SHARDFORM_DATABASE_URL": f.String("database-url", "", "Postgres URL (SHARDFORM_DATABASE_URL; default postgres://127.0.0.1:5432/shardform?sslmode=disable)"),
			"SHARDFORM_DATA_DIR":     f.String("data-dir", "", "data directory: master key file, Terraform workspaces (SHARDFORM_DATA_DIR; default ./.shardform)"),
			"SHARDFORM_LOG_LEVEL":    f.String("log-level", "", "debug, info, warn or error (SHARDFORM_LOG_LEVEL; default info)"),
			"SHARDFORM_LOG_FORMAT":   f.String("log-format", "", "text or json (SHARDFORM_LOG_FORMAT; default text)"),
		}
		if name != "migrate" {
			overrides["SHARDFORM_ADDR"] = f.String("addr", "", "listen address host:port (SHARDFORM_ADDR; default 127.0.0.1:8080)")
		}
		cmd.RunE = func(cmd *cobra.Command, _ []string) error {
			return runServer(cmd.Context(), name, overrides, c.env, c.stderr)
		}
		out = append(out, cmd)
	}
	return out
}

// runServer validates the whole configuration (each flag overriding its
// SHARDFORM_* variable) before touching the database, then runs.
func runServer(ctx context.Context, cmd string, overrides map[string]*string, env func(string) string, stderr io.Writer) error {
	getenv := func(name string) string {
		if v, ok := overrides[name]; ok && *v != "" {
			return *v
		}
		return env(name)
	}
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	log := newLogger(stderr, cfg).With(slog.String("component", cmd))
	if abs, err := filepath.Abs(cfg.DataDir); err == nil {
		log.Info("data dir", slog.String("path", abs))
	}

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	pool, err := openDatabase(ctx, &cfg, cmd != "migrate", log)
	if err != nil {
		return err
	}
	defer pool.Close()
	if cmd == "migrate" {
		return nil
	}
	return serve(ctx, cmd, cfg, pool, log)
}

func (c *cli) versionCmd() *cobra.Command {
	return &cobra.Command{
		Use: "version", Short: "Prints the version.", Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(c.stdout, version)
			return err
		},
	}
}
