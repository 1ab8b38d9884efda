package providers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/cloudflare/cloudflare-go"
	"github.com/hetznercloud/hcloud-go/v2/hcloud"
)

// verifyTimeout bounds one verification call to a provider's API.
const verifyTimeout = 20 * time.Second

// HetznerVerifier checks a Hetzner Cloud API token by listing server types
// through hcloud-go (every token, read-only or read-write, may do that).
type HetznerVerifier struct {
	// Endpoint is the API's base URL; empty: Hetzner's own
	// (https://api.hetzner.cloud/v1). Tests point it at a local fake.
	Endpoint string
}

// Verify implements credentials.Verifier: nil when Hetzner accepts the
// token, else Hetzner's error (for example "unable to authenticate
// (unauthorized)").
func (v HetznerVerifier) Verify(ctx context.Context, secret map[string]string) error {
	c := hcloudClient(v.Endpoint, secret["token"], verifyTimeout)
	if _, _, err := c.ServerType.List(ctx, hcloud.ServerTypeListOpts{ListOpts: hcloud.ListOpts{PerPage: 1}}); err != nil {
		return fmt.Errorf("hetzner: %w", err)
	}
	return nil
}

// CloudflareVerifier checks a Cloudflare API token with Cloudflare's token
// verification endpoint (GET /user/tokens/verify) through cloudflare-go.
type CloudflareVerifier struct {
	// BaseURL is the API's base URL; empty: Cloudflare's own
	// (https://api.cloudflare.com/client/v4). Tests point it at a local fake.
	BaseURL string
}

// Verify implements credentials.Verifier: nil when the token is active.
func (v CloudflareVerifier) Verify(ctx context.Context, secret map[string]string) error {
	opts := []cloudflare.Option{
		cloudflare.HTTPClient(&http.Client{Timeout: verifyTimeout}),
		cloudflare.UsingRetryPolicy(1, 1, 2),
		cloudflare.UserAgent("shardform"),
	}
	if v.BaseURL != "" {
		opts = append(opts, cloudflare.BaseURL(v.BaseURL))
	}
	api, err := cloudflare.NewWithAPIToken(secret["api_token"], opts...)
	if err != nil {
		return fmt.Errorf("cloudflare: %w", err)
	}
	body, err := api.VerifyAPIToken(ctx)
	if err != nil {
		return fmt.Errorf("cloudflare: %w", err)
	}
	if body.Status != "active" {
		return errors.New("cloudflare: the token is " + body.Status + ", not active")
	}
	return nil
}
