package main

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/shardform/shardform/planner"
	"github.com/shardform/shardform/provision"
	"github.com/shardform/shardform/seal"
)

// Config is every setting, read from SHARDFORM_* environment variables.
type Config struct {
	DatabaseURL       string        // SHARDFORM_DATABASE_URL
	Addr              string        // SHARDFORM_ADDR
	TrustedProxies    []string      // SHARDFORM_TRUSTED_PROXIES: reverse proxies (IPs or CIDRs, comma-separated) whose X-Forwarded-Proto is believed
	MetricsAddr       string        // SHARDFORM_METRICS_ADDR: where `shardform worker` serves /metrics (empty: nowhere)
	PublicURL         string        // SHARDFORM_PUBLIC_URL: the API's address as nodes and people reach it; set: provisioned nodes join by themselves, and the device login's verification URI is under it
	DataDir           string        // SHARDFORM_DATA_DIR
	MasterKey         []byte        // SHARDFORM_MASTER_KEY (base64), else <data dir>/master.key
	MasterKeyFromFile bool          // the key came from (or was generated into) the data dir
	RateLimit         int           // SHARDFORM_RATE_LIMIT: requests per credential per minute
	AllowRegistration bool          // SHARDFORM_ALLOW_REGISTRATION
	LogLevel          slog.Level    // SHARDFORM_LOG_LEVEL: debug, info, warn, error
	LogJSON           bool          // SHARDFORM_LOG_FORMAT: text or json
	TerraformPath     string        // SHARDFORM_TERRAFORM_PATH: the terraform binary (else PATH, else a download)
	Path              string        // PATH: handed to Terraform runs (nothing else of the environment is)
	PluginMirror      string        // SHARDFORM_TF_PLUGIN_MIRROR: a filesystem mirror of Terraform providers
	TerraformWorkers  int           // SHARDFORM_TERRAFORM_WORKERS: concurrent Terraform jobs per worker process
	LocalApplyDelay   time.Duration // SHARDFORM_LOCAL_APPLY_DELAY: makes the local driver's apply slow (demos, crash tests)
	TerraformTimeout  time.Duration // SHARDFORM_TERRAFORM_TIMEOUT: longest Terraform run; a dead worker's job is retried after it
	StateVersions     int           // SHARDFORM_STATE_VERSIONS: versions kept per Terraform state
	CancelGrace       time.Duration // SHARDFORM_CANCEL_GRACE: how long a cancelled Terraform run may take to stop before it is killed
	WorkerName        string        // SHARDFORM_WORKER_NAME: this process's name on its runs and state locks (default host:pid)
	RescueInterval    time.Duration // SHARDFORM_RUN_RESCUE_INTERVAL: how often runs of dead workers are looked for
	DriftInterval     time.Duration // SHARDFORM_DRIFT_INTERVAL: periodic drift check of applied requests; 0: off
	PlanRender        string        // SHARDFORM_PLAN_RENDER: eager (a plan is rendered for review as it succeeds) or on-demand (when GET /v1/runs/{id}/plan asks)
	// SHARDFORM_DNS_RECONCILE_INTERVAL: how often managed DNS records are
	// compared with Cloudflare (dns_reconcile); 0: never.
	DNSReconcileInterval time.Duration
	DNSWorkers           int // SHARDFORM_DNS_WORKERS: concurrent DNS jobs per worker process
	// SHARDFORM_DNS_RATE_LIMIT: Cloudflare API requests per 5 minutes per
	// token, from every process together (counted in Postgres; Cloudflare
	// allows 1,200).
	DNSRateLimit int
	// SHARDFORM_DNS_ZONE_CACHE: how long a zone's copy (its records as last
	// read from Cloudflare) is trusted for the API's name checks; 0: never.
	DNSZoneCache time.Duration
	StopTimeout  time.Duration // SHARDFORM_STOP_TIMEOUT: how long a node's graceful shutdown may take before a hard power-off
	// SHARDFORM_FLEET_SAVING_THRESHOLD: a fleet report proposes emptying
	// nodes only when that saves more than this percentage of the monthly cost.
	FleetSavingThreshold int
	// SHARDFORM_CURRENCY_RATES: the planner's exchange rates, amounts of
	// each currency per 1 EUR ("USD=1.16,GBP=0.87,as_of=2026-11-20");
	// zero value: the planner's built-in table.
	Rates planner.RateTable
	// Cloud API endpoints, for tests and private clouds; empty: the cloud's own.
	HcloudEndpoint     string // SHARDFORM_HCLOUD_ENDPOINT: Hetzner Cloud API (hcloud-go, and the hcloud provider)
	CloudflareEndpoint string // SHARDFORM_CLOUDFLARE_ENDPOINT: Cloudflare API (cloudflare-go)
	AWSEndpoint        string // SHARDFORM_AWS_ENDPOINT: EC2 and STS endpoint of the aws provider
}

// configError names the variable that is wrong.
type configError struct {
	name, msg string
}

func (e *configError) Error() string { return e.name + ": " + e.msg }

// loadConfig reads the environment through getenv. It does not touch the
// master key file; loadMasterKey does.
func loadConfig(getenv func(string) string) (Config, error) {
	get := func(name, def string) string {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			return v
		}
		return def
	}
	cfg := Config{
		DatabaseURL: get("SHARDFORM_DATABASE_URL", "postgres://127.0.0.1:5432/shardform?sslmode=disable"),
		Addr:        get("SHARDFORM_ADDR", "127.0.0.1:8080"),
		DataDir:     get("SHARDFORM_DATA_DIR", "./.shardform"),
	}
	if _, err := pgx.ParseConfig(cfg.DatabaseURL); err != nil {
		return cfg, &configError{"SHARDFORM_DATABASE_URL", "not a valid Postgres URL: " + err.Error()}
	}
	if err := validAddr(cfg.Addr); err != nil {
		return cfg, &configError{"SHARDFORM_ADDR", fmt.Sprintf("must be host:port with a port from 0 to 65535, got %q: %v", cfg.Addr, err)}
	}
	if cfg.MetricsAddr = get("SHARDFORM_METRICS_ADDR", ""); cfg.MetricsAddr != "" {
		if err := validAddr(cfg.MetricsAddr); err != nil {
			return cfg, &configError{"SHARDFORM_METRICS_ADDR", fmt.Sprintf("must be host:port with a port from 0 to 65535, got %q: %v", cfg.MetricsAddr, err)}
		}
	}
	cfg.Path = getenv("PATH")
	n, err := strconv.Atoi(get("SHARDFORM_RATE_LIMIT", "600"))
	if err != nil || n < 1 {
		return cfg, &configError{"SHARDFORM_RATE_LIMIT", "must be a whole number of requests per minute, at least 1"}
	}
	cfg.RateLimit = n
	switch strings.ToLower(get("SHARDFORM_ALLOW_REGISTRATION", "true")) {
	case "true", "1", "yes":
		cfg.AllowRegistration = true
	case "false", "0", "no":
	default:
		return cfg, &configError{"SHARDFORM_ALLOW_REGISTRATION", "must be true or false"}
	}
	if err := cfg.LogLevel.UnmarshalText([]byte(get("SHARDFORM_LOG_LEVEL", "info"))); err != nil {
		return cfg, &configError{"SHARDFORM_LOG_LEVEL", "must be debug, info, warn or error"}
	}
	switch get("SHARDFORM_LOG_FORMAT", "text") {
	case "text":
	case "json":
		cfg.LogJSON = true
	default:
		return cfg, &configError{"SHARDFORM_LOG_FORMAT", "must be text or json"}
	}
	cfg.TerraformPath = get("SHARDFORM_TERRAFORM_PATH", "")
	cfg.PluginMirror = get("SHARDFORM_TF_PLUGIN_MIRROR", "")
	if cfg.PluginMirror != "" {
		if info, err := os.Stat(cfg.PluginMirror); err != nil || !info.IsDir() {
			return cfg, &configError{"SHARDFORM_TF_PLUGIN_MIRROR", cfg.PluginMirror + " is not a directory"}
		}
	}
	if n, err := strconv.Atoi(get("SHARDFORM_TERRAFORM_WORKERS", "2")); err != nil || n < 1 || n > 64 {
		return cfg, &configError{"SHARDFORM_TERRAFORM_WORKERS", "must be a whole number from 1 to 64"}
	} else {
		cfg.TerraformWorkers = n
	}
	if d, err := time.ParseDuration(get("SHARDFORM_LOCAL_APPLY_DELAY", "0s")); err != nil || d < 0 {
		return cfg, &configError{"SHARDFORM_LOCAL_APPLY_DELAY", "must be a duration such as 30s"}
	} else {
		cfg.LocalApplyDelay = d
	}
	if d, err := time.ParseDuration(get("SHARDFORM_CANCEL_GRACE", "60s")); err != nil || d < time.Second || d > time.Hour {
		return cfg, &configError{"SHARDFORM_CANCEL_GRACE", "must be a duration from 1s to 1h, such as 60s"}
	} else {
		cfg.CancelGrace = d
	}
	cfg.WorkerName = get("SHARDFORM_WORKER_NAME", "")
	if len(cfg.WorkerName) > 200 {
		return cfg, &configError{"SHARDFORM_WORKER_NAME", "must be at most 200 characters"}
	}
	if d, err := time.ParseDuration(get("SHARDFORM_RUN_RESCUE_INTERVAL", "5s")); err != nil || d < 100*time.Millisecond || d > 5*time.Minute {
		return cfg, &configError{"SHARDFORM_RUN_RESCUE_INTERVAL", "must be a duration from 100ms to 5m, such as 5s"}
	} else {
		cfg.RescueInterval = d
	}
	for _, p := range strings.Split(get("SHARDFORM_TRUSTED_PROXIES", ""), ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		if _, _, err := net.ParseCIDR(p); err != nil && net.ParseIP(p) == nil {
			return cfg, &configError{"SHARDFORM_TRUSTED_PROXIES", "must be IP addresses or CIDR ranges separated by commas, such as 10.0.0.0/8"}
		}
		cfg.TrustedProxies = append(cfg.TrustedProxies, p)
	}
	if u := strings.TrimRight(get("SHARDFORM_PUBLIC_URL", ""), "/"); u != "" {
		if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
			return cfg, &configError{"SHARDFORM_PUBLIC_URL", "must be an http:// or https:// address, such as https://shardform.example.com"}
		}
		cfg.PublicURL = u
	}
	if d, err := time.ParseDuration(get("SHARDFORM_DRIFT_INTERVAL", "0s")); err != nil || (d != 0 && d < time.Minute) {
		return cfg, &configError{"SHARDFORM_DRIFT_INTERVAL", "must be 0 (off) or a duration of at least 1m, such as 6h"}
	} else {
		cfg.DriftInterval = d
	}
	switch v := get("SHARDFORM_PLAN_RENDER", provision.PlanRenderEager); v {
	case provision.PlanRenderEager, provision.PlanRenderOnDemand:
		cfg.PlanRender = v
	default:
		return cfg, &configError{"SHARDFORM_PLAN_RENDER", "must be eager or on-demand"}
	}
	if d, err := time.ParseDuration(get("SHARDFORM_DNS_RECONCILE_INTERVAL", "10m")); err != nil || (d != 0 && d < time.Minute) {
		return cfg, &configError{"SHARDFORM_DNS_RECONCILE_INTERVAL", "must be 0 (off) or a duration of at least 1m, such as 10m"}
	} else {
		cfg.DNSReconcileInterval = d
	}
	if n, err := strconv.Atoi(get("SHARDFORM_DNS_WORKERS", "4")); err != nil || n < 1 || n > 64 {
		return cfg, &configError{"SHARDFORM_DNS_WORKERS", "must be a whole number from 1 to 64"}
	} else {
		cfg.DNSWorkers = n
	}
	if n, err := strconv.Atoi(get("SHARDFORM_DNS_RATE_LIMIT", "1200")); err != nil || n < 1 || n > 1000000 {
		return cfg, &configError{"SHARDFORM_DNS_RATE_LIMIT", "must be a whole number of requests per 5 minutes, from 1 to 1000000"}
	} else {
		cfg.DNSRateLimit = n
	}
	if d, err := time.ParseDuration(get("SHARDFORM_DNS_ZONE_CACHE", "5m")); err != nil || d < 0 || d > time.Hour {
		return cfg, &configError{"SHARDFORM_DNS_ZONE_CACHE", "must be a duration from 0 (read the zone for every create) to 1h, such as 5m"}
	} else {
		cfg.DNSZoneCache = d
	}
	if d, err := time.ParseDuration(get("SHARDFORM_STOP_TIMEOUT", "60s")); err != nil || d < time.Second || d > time.Hour {
		return cfg, &configError{"SHARDFORM_STOP_TIMEOUT", "must be a duration from 1s to 1h, such as 60s"}
	} else {
		cfg.StopTimeout = d
	}
	if n, err := strconv.Atoi(get("SHARDFORM_STATE_VERSIONS", "50")); err != nil || n < 1 || n > 10000 {
		return cfg, &configError{"SHARDFORM_STATE_VERSIONS", "must be a whole number from 1 to 10000"}
	} else {
		cfg.StateVersions = n
	}
	if d, err := time.ParseDuration(get("SHARDFORM_TERRAFORM_TIMEOUT", "1h")); err != nil || d < 10*time.Second {
		return cfg, &configError{"SHARDFORM_TERRAFORM_TIMEOUT", "must be a duration of at least 10s, such as 1h"}
	} else {
		cfg.TerraformTimeout = d
	}
	for _, e := range []struct {
		name string
		dst  *string
	}{
		{"SHARDFORM_HCLOUD_ENDPOINT", &cfg.HcloudEndpoint},
		{"SHARDFORM_CLOUDFLARE_ENDPOINT", &cfg.CloudflareEndpoint},
		{"SHARDFORM_AWS_ENDPOINT", &cfg.AWSEndpoint},
	} {
		v := get(e.name, "")
		if v == "" {
			continue
		}
		if u, err := url.Parse(v); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return cfg, &configError{e.name, fmt.Sprintf("must be an http(s) URL, got %q", v)}
		}
		*e.dst = strings.TrimRight(v, "/")
	}
	if n, err := strconv.Atoi(strings.TrimSuffix(get("SHARDFORM_FLEET_SAVING_THRESHOLD", "20"), "%")); err != nil || n < 0 || n > 100 {
		return cfg, &configError{"SHARDFORM_FLEET_SAVING_THRESHOLD", "must be a whole percentage from 0 to 100, such as 20"}
	} else {
		cfg.FleetSavingThreshold = n
	}
	if v := get("SHARDFORM_CURRENCY_RATES", ""); v != "" {
		rates, err := parseRates(v, time.Now())
		if err != nil {
			return cfg, &configError{"SHARDFORM_CURRENCY_RATES", err.Error()}
		}
		cfg.Rates = rates
	}
	if v := getenv("SHARDFORM_MASTER_KEY"); v != "" {
		key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(v))
		if err != nil || len(key) != seal.KeySize {
			return cfg, &configError{"SHARDFORM_MASTER_KEY", fmt.Sprintf("must be %d bytes, base64-encoded (openssl rand -base64 32)", seal.KeySize)}
		}
		cfg.MasterKey = key
	}
	return cfg, nil
}

// validAddr checks a listen address: host:port (host may be empty or
// bracketed IPv6), numeric port.
func validAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return errors.New("the port is not a number from 0 to 65535")
	}
	return nil
}

// loadMasterKey fills cfg.MasterKey from <data dir>/master.key when the
// environment did not set it, generating the file (mode 0600) the first time.
func loadMasterKey(cfg *Config, log *slog.Logger) error {
	if cfg.MasterKey != nil {
		return nil
	}
	path := filepath.Join(cfg.DataDir, "master.key")
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		key, derr := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
		if derr != nil || len(key) != seal.KeySize {
			return &configError{"SHARDFORM_DATA_DIR", path + " does not hold a base64 32-byte key"}
		}
		cfg.MasterKey, cfg.MasterKeyFromFile = key, true
		log.Warn("using the master key file from the data dir; set SHARDFORM_MASTER_KEY in production", slog.String("path", path))
		return nil
	case !errors.Is(err, fs.ErrNotExist):
		return &configError{"SHARDFORM_DATA_DIR", "cannot read " + path + ": " + err.Error()}
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return &configError{"SHARDFORM_DATA_DIR", "cannot create: " + err.Error()}
	}
	key := make([]byte, seal.KeySize)
	if _, err := rand.Read(key); err != nil {
		return fmt.Errorf("generate master key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return &configError{"SHARDFORM_DATA_DIR", "cannot write " + path + ": " + err.Error()}
	}
	if _, err := f.WriteString(base64.StdEncoding.EncodeToString(key) + "\n"); err != nil {
		f.Close()
		return fmt.Errorf("write master key: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write master key: %w", err)
	}
	cfg.MasterKey, cfg.MasterKeyFromFile = key, true
	log.Warn("generated a development master key; back it up, or set SHARDFORM_MASTER_KEY in production: secrets sealed with it cannot be read without it",
		slog.String("path", path))
	return nil
}

// parseRates reads "USD=1.16,GBP=0.87[,as_of=YYYY-MM-DD]": amounts of each
// currency per 1 EUR, exact decimals. Without as_of the rates are dated now.
func parseRates(v string, now time.Time) (planner.RateTable, error) {
	const usage = `must be CURRENCY=RATE pairs per 1 EUR, comma-separated, with an optional as_of=YYYY-MM-DD (USD=1.16,GBP=0.87)`
	rates := map[string]string{}
	asOf := now.UTC()
	for _, part := range strings.Split(v, ",") {
		k, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || k == "" || val == "" {
			return planner.RateTable{}, errors.New(usage)
		}
		if k == "as_of" {
			t, err := time.Parse(time.DateOnly, val)
			if err != nil {
				return planner.RateTable{}, errors.New(usage)
			}
			asOf = t
			continue
		}
		rates[strings.ToUpper(k)] = val
	}
	t, err := planner.NewRateTable(planner.DefaultCurrency, rates, asOf, "config")
	if err != nil {
		return planner.RateTable{}, fmt.Errorf("%w (%s)", err, usage)
	}
	return t, nil
}
