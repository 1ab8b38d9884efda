package main

import (
	"bytes"
	"encoding/base64"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadConfig(t *testing.T) {
	t.Parallel()
	goodKey := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32))
	tests := []struct {
		name    string
		env     map[string]string
		wantErr string // the variable the error must name
		check   func(t *testing.T, c Config)
	}{
		{"defaults", nil, "", func(t *testing.T, c Config) {
			if c.DatabaseURL != "postgres://127.0.0.1:5432/shardform?sslmode=disable" || c.Addr != "127.0.0.1:8080" ||
				c.DataDir != "./.shardform" || c.RateLimit != 600 || !c.AllowRegistration || c.MasterKey != nil || c.StopTimeout != 60*time.Second {
				t.Errorf("defaults %+v", c)
			}
		}},
		{"trusted proxies", map[string]string{"SHARDFORM_TRUSTED_PROXIES": "10.0.0.0/8, 192.0.2.7"}, "", func(t *testing.T, c Config) {
			if len(c.TrustedProxies) != 2 || c.TrustedProxies[0] != "10.0.0.0/8" || c.TrustedProxies[1] != "192.0.2.7" {
				t.Errorf("trusted proxies %q", c.TrustedProxies)
			}
		}},
		{"bad trusted proxy", map[string]string{"SHARDFORM_TRUSTED_PROXIES": "proxy.example.com"}, "SHARDFORM_TRUSTED_PROXIES", nil},
		{"master key from env", map[string]string{"SHARDFORM_MASTER_KEY": goodKey}, "", func(t *testing.T, c Config) {
			if len(c.MasterKey) != 32 {
				t.Errorf("key %d bytes", len(c.MasterKey))
			}
		}},
		{"short master key", map[string]string{"SHARDFORM_MASTER_KEY": base64.StdEncoding.EncodeToString([]byte("short"))}, "SHARDFORM_MASTER_KEY", nil},
		{"master key not base64", map[string]string{"SHARDFORM_MASTER_KEY": "%%%"}, "SHARDFORM_MASTER_KEY", nil},
		{"bad database url", map[string]string{"SHARDFORM_DATABASE_URL": "postgres://host:notaport/db"}, "SHARDFORM_DATABASE_URL", nil},
		{"bad addr", map[string]string{"SHARDFORM_ADDR": "8080"}, "SHARDFORM_ADDR", nil},
		{"bad cancel grace", map[string]string{"SHARDFORM_CANCEL_GRACE": "0s"}, "SHARDFORM_CANCEL_GRACE", nil},
		{"cancel grace", map[string]string{"SHARDFORM_CANCEL_GRACE": "2m"}, "", func(t *testing.T, c Config) {
			if c.CancelGrace != 2*time.Minute {
				t.Errorf("cancel grace %v", c.CancelGrace)
			}
		}},
		{"plan render default", nil, "", func(t *testing.T, c Config) {
			if c.PlanRender != "eager" {
				t.Errorf("plan render %q", c.PlanRender)
			}
		}},
		{"plan render on demand", map[string]string{"SHARDFORM_PLAN_RENDER": "on-demand"}, "", func(t *testing.T, c Config) {
			if c.PlanRender != "on-demand" {
				t.Errorf("plan render %q", c.PlanRender)
			}
		}},
		{"bad plan render", map[string]string{"SHARDFORM_PLAN_RENDER": "lazy"}, "SHARDFORM_PLAN_RENDER", nil},
		{"bad stop timeout", map[string]string{"SHARDFORM_STOP_TIMEOUT": "soon"}, "SHARDFORM_STOP_TIMEOUT", nil},
		{"stop timeout over an hour", map[string]string{"SHARDFORM_STOP_TIMEOUT": "2h"}, "SHARDFORM_STOP_TIMEOUT", nil},
		{"stop timeout", map[string]string{"SHARDFORM_STOP_TIMEOUT": "90s"}, "", func(t *testing.T, c Config) {
			if c.StopTimeout != 90*time.Second {
				t.Errorf("stop timeout %v", c.StopTimeout)
			}
		}},
		{"dns defaults", nil, "", func(t *testing.T, c Config) {
			if c.DNSReconcileInterval != 10*time.Minute || c.DNSWorkers != 4 || c.DNSRateLimit != 1200 || c.DNSZoneCache != 5*time.Minute {
				t.Errorf("dns defaults %v %d %d", c.DNSReconcileInterval, c.DNSWorkers, c.DNSRateLimit)
			}
		}},
		{"dns settings", map[string]string{"SHARDFORM_DNS_RECONCILE_INTERVAL": "0", "SHARDFORM_DNS_WORKERS": "9", "SHARDFORM_DNS_RATE_LIMIT": "600"}, "", func(t *testing.T, c Config) {
			if c.DNSReconcileInterval != 0 || c.DNSWorkers != 9 || c.DNSRateLimit != 600 {
				t.Errorf("dns settings %v %d %d", c.DNSReconcileInterval, c.DNSWorkers, c.DNSRateLimit)
			}
		}},
		{"dns reconcile too often", map[string]string{"SHARDFORM_DNS_RECONCILE_INTERVAL": "10s"}, "SHARDFORM_DNS_RECONCILE_INTERVAL", nil},
		{"bad dns workers", map[string]string{"SHARDFORM_DNS_WORKERS": "0"}, "SHARDFORM_DNS_WORKERS", nil},
		{"bad dns rate limit", map[string]string{"SHARDFORM_DNS_RATE_LIMIT": "many"}, "SHARDFORM_DNS_RATE_LIMIT", nil},
		{"dns zone cache", map[string]string{"SHARDFORM_DNS_ZONE_CACHE": "30s"}, "", func(t *testing.T, c Config) {
			if c.DNSZoneCache != 30*time.Second {
				t.Errorf("zone cache %v", c.DNSZoneCache)
			}
		}},
		{"bad dns zone cache", map[string]string{"SHARDFORM_DNS_ZONE_CACHE": "-1s"}, "SHARDFORM_DNS_ZONE_CACHE", nil},
		{"bad cloudflare endpoint", map[string]string{"SHARDFORM_CLOUDFLARE_ENDPOINT": "ftp://x"}, "SHARDFORM_CLOUDFLARE_ENDPOINT", nil},
		{"bad state versions", map[string]string{"SHARDFORM_STATE_VERSIONS": "0"}, "SHARDFORM_STATE_VERSIONS", nil},
		{"state versions", map[string]string{"SHARDFORM_STATE_VERSIONS": "7"}, "", func(t *testing.T, c Config) {
			if c.StateVersions != 7 {
				t.Errorf("state versions %d", c.StateVersions)
			}
		}},
		{"addr port out of range", map[string]string{"SHARDFORM_ADDR": "localhost:99999"}, "SHARDFORM_ADDR", nil},
		{"addr port not a number", map[string]string{"SHARDFORM_ADDR": "localhost:http-alt"}, "SHARDFORM_ADDR", nil},
		{"addr two colons", map[string]string{"SHARDFORM_ADDR": "a:b:8080"}, "SHARDFORM_ADDR", nil},
		{"addr any host", map[string]string{"SHARDFORM_ADDR": ":8080"}, "", func(t *testing.T, c Config) {
			if c.Addr != ":8080" {
				t.Errorf("addr %q", c.Addr)
			}
		}},
		{"addr ipv6", map[string]string{"SHARDFORM_ADDR": "[::1]:8080"}, "", func(t *testing.T, c Config) {
			if c.Addr != "[::1]:8080" {
				t.Errorf("addr %q", c.Addr)
			}
		}},
		{"bad rate limit", map[string]string{"SHARDFORM_RATE_LIMIT": "0"}, "SHARDFORM_RATE_LIMIT", nil},
		{"bad registration flag", map[string]string{"SHARDFORM_ALLOW_REGISTRATION": "maybe"}, "SHARDFORM_ALLOW_REGISTRATION", nil},
		{"registration closed", map[string]string{"SHARDFORM_ALLOW_REGISTRATION": "false"}, "", func(t *testing.T, c Config) {
			if c.AllowRegistration {
				t.Error("registration still open")
			}
		}},
		{"bad log level", map[string]string{"SHARDFORM_LOG_LEVEL": "loud"}, "SHARDFORM_LOG_LEVEL", nil},
		{"fleet saving threshold default", nil, "", func(t *testing.T, c Config) {
			if c.FleetSavingThreshold != 20 {
				t.Errorf("threshold %d, want 20", c.FleetSavingThreshold)
			}
		}},
		{"fleet saving threshold", map[string]string{"SHARDFORM_FLEET_SAVING_THRESHOLD": "35"}, "", func(t *testing.T, c Config) {
			if c.FleetSavingThreshold != 35 {
				t.Errorf("threshold %d, want 35", c.FleetSavingThreshold)
			}
		}},
		{"fleet saving threshold with percent sign", map[string]string{"SHARDFORM_FLEET_SAVING_THRESHOLD": "0%"}, "", func(t *testing.T, c Config) {
			if c.FleetSavingThreshold != 0 {
				t.Errorf("threshold %d, want 0", c.FleetSavingThreshold)
			}
		}},
		{"fleet saving threshold over 100", map[string]string{"SHARDFORM_FLEET_SAVING_THRESHOLD": "101"}, "SHARDFORM_FLEET_SAVING_THRESHOLD", nil},
		{"fleet saving threshold negative", map[string]string{"SHARDFORM_FLEET_SAVING_THRESHOLD": "-5"}, "SHARDFORM_FLEET_SAVING_THRESHOLD", nil},
		{"fleet saving threshold not a number", map[string]string{"SHARDFORM_FLEET_SAVING_THRESHOLD": "0.2"}, "SHARDFORM_FLEET_SAVING_THRESHOLD", nil},
		{"cloud endpoints", map[string]string{"SHARDFORM_AWS_ENDPOINT": "http://127.0.0.1:4566/", "SHARDFORM_HCLOUD_ENDPOINT": "https://hcloud.example/v1"}, "", func(t *testing.T, c Config) {
			if c.AWSEndpoint != "http://127.0.0.1:4566" || c.HcloudEndpoint != "https://hcloud.example/v1" || c.CloudflareEndpoint != "" {
				t.Errorf("endpoints %q %q %q", c.AWSEndpoint, c.HcloudEndpoint, c.CloudflareEndpoint)
			}
		}},
		{"currency rates", map[string]string{"SHARDFORM_CURRENCY_RATES": "usd=1.1625, GBP=0.87,as_of=2026-11-20"}, "", func(t *testing.T, c Config) {
			if c.Rates.Base != "EUR" || c.Rates.Rates["USD"] != 1_162_500_000 || c.Rates.Rates["GBP"] != 870_000_000 ||
				c.Rates.Source != "config" || c.Rates.AsOf.Format(time.DateOnly) != "2026-11-20" {
				t.Errorf("rates %+v", c.Rates)
			}
		}},
		{"rates without defaults", nil, "", func(t *testing.T, c Config) {
			if c.Rates.Rates != nil {
				t.Errorf("rates set without SHARDFORM_CURRENCY_RATES: %+v", c.Rates)
			}
		}},
		{"rate not a number", map[string]string{"SHARDFORM_CURRENCY_RATES": "USD=abc"}, "SHARDFORM_CURRENCY_RATES", nil},
		{"negative rate", map[string]string{"SHARDFORM_CURRENCY_RATES": "USD=-1"}, "SHARDFORM_CURRENCY_RATES", nil},
		{"rate without currency", map[string]string{"SHARDFORM_CURRENCY_RATES": "1.16"}, "SHARDFORM_CURRENCY_RATES", nil},
		{"bad as_of", map[string]string{"SHARDFORM_CURRENCY_RATES": "USD=1.1,as_of=yesterday"}, "SHARDFORM_CURRENCY_RATES", nil},
		{"endpoint without scheme", map[string]string{"SHARDFORM_AWS_ENDPOINT": "127.0.0.1:4566"}, "SHARDFORM_AWS_ENDPOINT", nil},
		{"endpoint of another scheme", map[string]string{"SHARDFORM_CLOUDFLARE_ENDPOINT": "ftp://x"}, "SHARDFORM_CLOUDFLARE_ENDPOINT", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := loadConfig(func(k string) string { return tt.env[k] })
			if tt.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr+": ") || strings.Contains(err.Error(), "\n") {
					t.Fatalf("err = %v, want one line naming %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

func TestMasterKeyFile(t *testing.T) {
	t.Parallel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	dir := filepath.Join(t.TempDir(), "data")
	first := Config{DataDir: dir}
	if err := loadMasterKey(&first, log); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(filepath.Join(dir, "master.key"))
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 || len(first.MasterKey) != 32 {
		t.Fatalf("key file mode %v, key %d bytes", info.Mode().Perm(), len(first.MasterKey))
	}
	// A restart reads the same key back.
	second := Config{DataDir: dir}
	if err := loadMasterKey(&second, log); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first.MasterKey, second.MasterKey) {
		t.Fatal("restart produced a different master key")
	}
	// The environment wins over the file.
	env := Config{DataDir: dir, MasterKey: bytes.Repeat([]byte{9}, 32)}
	if err := loadMasterKey(&env, log); err != nil || env.MasterKey[0] != 9 {
		t.Fatalf("env key replaced: %v", err)
	}
	// A corrupt file is an error naming the setting, never silently replaced.
	if err := os.WriteFile(filepath.Join(dir, "master.key"), []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := Config{DataDir: dir}
	if err := loadMasterKey(&bad, log); err == nil || !strings.HasPrefix(err.Error(), "SHARDFORM_DATA_DIR: ") {
		t.Fatalf("corrupt key file: err = %v", err)
	}
}
