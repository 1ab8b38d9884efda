package providers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	"github.com/shardform/shardform/terraform"
)

// awsVerifyTimeout bounds one verification: Terraform starts the aws
// provider (a large binary) and the provider calls STS.
const awsVerifyTimeout = 2 * time.Minute

// AWSVerifier checks an AWS access key the way provisioning will use it:
// Terraform's aws provider reads the aws_caller_identity data source (STS
// GetCallerIdentity, which every valid key may call) in a scratch
// directory of the runner, against Endpoint when set.
type AWSVerifier struct {
	Runner *terraform.Runner
	// Endpoint is the STS endpoint; empty: AWS's own.
	Endpoint string
	// Region is the provider's region; empty: us-east-1.
	Region string
}

// apiErrorPattern finds the AWS error code and message in the provider's
// diagnostics ("api error InvalidClientTokenId: The security token ...").
var apiErrorPattern = regexp.MustCompile(`api error ([A-Za-z0-9.]+): ([^\n]*)`)

// providerError is a cloud's answer, short, with the full cause kept.
type providerError struct {
	msg string
	err error
}

func (e *providerError) Error() string { return e.msg }
func (e *providerError) Unwrap() error { return e.err }

// Verify implements credentials.Verifier: nil when AWS accepts the key,
// else the provider's error (for example "aws: InvalidClientTokenId: The
// security token included in the request is invalid.").
func (v AWSVerifier) Verify(ctx context.Context, secret map[string]string) error {
	if v.Runner == nil {
		return errors.New("aws: verify: no Terraform runner configured")
	}
	if secret["access_key_id"] == "" || secret["secret_access_key"] == "" {
		return errors.New("aws: verify: access_key_id and secret_access_key are required")
	}
	region := v.Region
	if region == "" {
		region = "us-east-1"
	}
	a := &AWS{Endpoint: v.Endpoint}
	provider := a.providerBlock(region)
	provider["max_retries"] = 1
	cfg := tfConfig{
		Terraform: awsTerraformBlock(false),
		Variable:  awsVariables(),
		Provider:  map[string]any{"aws": provider},
		Data:      map[string]any{"aws_caller_identity": map[string]any{"current": map[string]any{}}},
		Output: map[string]any{
			"account_id": map[string]any{"value": "${data.aws_caller_identity.current.account_id}"},
		},
	}
	config, err := cfg.marshal("aws")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, awsVerifyTimeout)
	defer cancel()
	if err := v.Runner.Scratch(ctx, config, a.Variables(secret), io.Discard); err != nil {
		if m := apiErrorPattern.FindStringSubmatch(err.Error()); m != nil {
			return &providerError{msg: "aws: " + m[1] + ": " + strings.TrimSpace(m[2]), err: err}
		}
		return fmt.Errorf("aws: verify: %w", err)
	}
	return nil
}
