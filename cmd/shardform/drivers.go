package main

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/shardform/shardform/credentials"
	"github.com/shardform/shardform/nodeops"
	"github.com/shardform/shardform/planner"
	"github.com/shardform/shardform/providers"
	"github.com/shardform/shardform/seal"
	"github.com/shardform/shardform/store"
	"github.com/shardform/shardform/terraform"
)

// drivers builds the provisioning drivers this deployment offers: local
// (no cloud), and the clouds whose catalogs come from the planner's pricing
// snapshot.
func drivers(cfg Config, now time.Time) (*providers.Registry, error) {
	catalog, err := planner.Snapshot()
	if err != nil {
		return nil, fmt.Errorf("pricing snapshot: %w", err)
	}
	hetzner := providers.NewHetzner(catalog, now)
	hetzner.Endpoint = cfg.HcloudEndpoint
	aws := providers.NewAWS(catalog, now)
	aws.Endpoint = cfg.AWSEndpoint
	return providers.NewRegistry(
		providers.Local{ApplyDelay: cfg.LocalApplyDelay},
		hetzner,
		aws,
	), nil
}

// credentialStore builds the credential service with a verifier per
// provider, each calling the provider's API (or the configured endpoint).
// AWS keys are checked by Terraform's aws provider, so only a process that
// runs Terraform (runner not nil) verifies them; an API-only process
// answers 422 for those.
func credentialStore(cfg Config, st *store.Store, sealer *seal.Sealer, runner *terraform.Runner) *credentials.Service {
	verifiers := map[string]credentials.Verifier{
		"hetzner":    providers.HetznerVerifier{Endpoint: cfg.HcloudEndpoint},
		"cloudflare": providers.CloudflareVerifier{BaseURL: cfg.CloudflareEndpoint},
	}
	if runner != nil {
		verifiers["aws"] = providers.AWSVerifier{Runner: runner, Endpoint: cfg.AWSEndpoint}
	}
	return credentials.New(st, sealer, verifiers)
}

// nodeOpsService builds the power actions on nodes: hcloud-go and the AWS
// SDK against the configured endpoints (or the clouds' own), local nodes'
// machines in Postgres.
func nodeOpsService(cfg Config, st *store.Store, sealer *seal.Sealer, log *slog.Logger) *nodeops.Service {
	return nodeops.New(st, sealer, nodeops.Config{
		Clouds: map[string]nodeops.Power{
			"hetzner": providers.HetznerPower{Endpoint: cfg.HcloudEndpoint},
			"aws":     providers.AWSPower{Endpoint: cfg.AWSEndpoint},
		},
		StopTimeout: cfg.StopTimeout,
		Logger:      log,
	})
}
