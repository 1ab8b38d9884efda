package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// healthCmd is `shardform health`: GET /health/ready of a running
// server; exit 0 when it answers 200 (ok or degraded), 1 otherwise. It
// needs nothing but the binary, so the container image can use it as its
// HEALTHCHECK.
func (c *cli) healthCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "health [flags]",
		Short: "Checks a running server's readiness.",
		Long:  "Checks GET /health/ready of a running server and exits 0 when it is ready\n(\"ok\", or \"degraded\" naming a queue it cannot run), 1 when it is not.",
		Args:  noArgs,
	}
	url := cmd.Flags().String("url", "", "the server's base URL (default http://127.0.0.1:<port of SHARDFORM_ADDR>)")
	timeout := cmd.Flags().Duration("timeout", 5*time.Second, "how long to wait for the answer")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		return runHealth(cmd.Context(), *url, *timeout, c.env, c.stdout)
	}
	hideClientFlags(cmd)
	return cmd
}

func runHealth(ctx context.Context, url string, timeout time.Duration, env func(string) string, out io.Writer) error {
	base := strings.TrimRight(url, "/")
	if base == "" {
		addr := env("SHARDFORM_ADDR")
		if addr == "" {
			addr = "127.0.0.1:8080"
		}
		if err := validAddr(addr); err != nil {
			return &configError{"SHARDFORM_ADDR", fmt.Sprintf("must be host:port, got %q", addr)}
		}
		host, port, _ := net.SplitHostPort(addr)
		if host == "" || host == "0.0.0.0" || host == "::" {
			host = "127.0.0.1"
		}
		base = "http://" + net.JoinHostPort(host, port)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/health/ready", nil)
	if err != nil {
		return fmt.Errorf("health: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("health: %w", err)
	}
	defer resp.Body.Close()
	var body struct {
		Status      string            `json:"status"`
		Error       string            `json:"error"`
		Unavailable map[string]string `json:"unavailable"`
	}
	_ = json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("health: %s answered %d %s %s", base, resp.StatusCode, body.Status, body.Error)
	}
	fmt.Fprintln(out, body.Status)
	for q, why := range body.Unavailable {
		fmt.Fprintf(out, "%s: %s\n", q, why)
	}
	return nil
}
