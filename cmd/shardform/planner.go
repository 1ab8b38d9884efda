package main

import (
	"github.com/shardform/shardform/capacity"
	"github.com/shardform/shardform/credentials"
	"github.com/shardform/shardform/providers"
	"github.com/shardform/shardform/store"
)

// plannerService builds the capacity planner: the embedded pricing
// snapshot, live Hetzner prices read with each organization's default
// hetzner credential (the pricing_refresh job), and the fleet report's
// saving threshold.
func plannerService(cfg Config, st *store.Store, creds *credentials.Service) (*capacity.Service, error) {
	threshold := cfg.FleetSavingThreshold
	return capacity.New(st, capacity.Config{
		Live:                        []capacity.PricingSource{providers.HetznerPricing{Endpoint: cfg.HcloudEndpoint}},
		Secrets:                     creds,
		FleetSavingThresholdPercent: &threshold,
		Rates:                       cfg.Rates,
	})
}
