// Package providers will hold one driver per cloud (local, hetzner, aws;
// cloudflare for DNS): Terraform JSON rendering, catalogs and output mapping.
// It is filled by the provisioning issue.
package providers
