package providers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
)

// AWSPower starts, stops and reboots EC2 instances through the AWS SDK for
// Go v2 (StartInstances, StopInstances, RebootInstances) and reads their
// state (DescribeInstances), with the credential's keys only: nothing of
// the process's environment or shared AWS files is read.
type AWSPower struct {
	// Endpoint is the EC2 endpoint (SHARDFORM_AWS_ENDPOINT); empty: AWS's own.
	Endpoint string
	// PollInterval is how often the instance's state is polled; 0: 1 s.
	PollInterval time.Duration
}

func (a AWSPower) client(m Machine) (*ec2.Client, error) {
	if m.ServerID == "" {
		return nil, fmt.Errorf("aws: the node has no instance id: %w", ErrMachineNotFound)
	}
	if m.Region == "" {
		return nil, errors.New("aws: the node has no region")
	}
	opts := ec2.Options{
		Region:           m.Region,
		Credentials:      aws.NewCredentialsCache(credentials.NewStaticCredentialsProvider(m.Secret["access_key_id"], m.Secret["secret_access_key"], "")),
		HTTPClient:       &http.Client{Timeout: powerCallTimeout},
		RetryMaxAttempts: 3,
		AppID:            "shardform",
	}
	if a.Endpoint != "" {
		opts.BaseEndpoint = aws.String(a.Endpoint)
	}
	return ec2.New(opts), nil
}

func (a AWSPower) poll() time.Duration {
	if a.PollInterval <= 0 {
		return defaultPowerPoll
	}
	return a.PollInterval
}

// awsError shortens an SDK error to the operation and EC2's code and
// message, marking refused credentials, unknown instances and wrong states.
func awsError(op string, err error) error {
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return fmt.Errorf("aws: %s: %w", op, err)
	}
	msg := fmt.Sprintf("aws: %s: %s: %s", op, ae.ErrorCode(), ae.ErrorMessage())
	switch ae.ErrorCode() {
	case "AuthFailure", "UnauthorizedOperation", "InvalidClientTokenId", "SignatureDoesNotMatch":
		return &providerError{msg: msg, err: errors.Join(ErrCredentialRefused, err)}
	case "InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed":
		return &providerError{msg: msg, err: errors.Join(ErrMachineNotFound, err)}
	case "IncorrectInstanceState", "IncorrectState":
		return &providerError{msg: msg, err: errors.Join(ErrIncorrectState, err)}
	}
	return &providerError{msg: msg, err: err}
}

// awsState maps an EC2 instance state to a power state.
func awsState(s types.InstanceStateName) string {
	switch s {
	case types.InstanceStateNameRunning:
		return PowerRunning
	case types.InstanceStateNameStopped:
		return PowerStopped
	case types.InstanceStateNamePending:
		return PowerStarting
	case types.InstanceStateNameStopping, types.InstanceStateNameShuttingDown:
		return PowerStopping
	}
	return PowerUnknown
}

func (a AWSPower) status(ctx context.Context, c *ec2.Client, id string) (PowerStatus, error) {
	out, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if err != nil {
		return PowerStatus{}, awsError("DescribeInstances", err)
	}
	for _, r := range out.Reservations {
		for _, in := range r.Instances {
			if aws.ToString(in.InstanceId) == id && in.State != nil {
				// PublicIpAddress changes at a start without an Elastic
				// IP; Ipv6Address (the primary ENI's) stays with the ENI.
				return PowerStatus{State: awsState(in.State.Name), Provider: string(in.State.Name),
					IPv4: aws.ToString(in.PublicIpAddress), IPv6: aws.ToString(in.Ipv6Address)}, nil
			}
		}
	}
	return PowerStatus{}, fmt.Errorf("aws: instance %s: %w", id, ErrMachineNotFound)
}

// PowerStatus reads the instance's state.
func (a AWSPower) PowerStatus(ctx context.Context, m Machine) (PowerStatus, error) {
	c, err := a.client(m)
	if err != nil {
		return PowerStatus{}, err
	}
	return a.status(ctx, c, m.ServerID)
}

// waitFor polls the instance until it is in state; a terminated instance
// (or one that ends up in the opposite state) fails.
func (a AWSPower) waitFor(ctx context.Context, c *ec2.Client, id, state string) error {
	return waitUntil(ctx, a.poll(), "instance "+id+" to be "+state, func() (bool, error) {
		st, err := a.status(ctx, c, id)
		if err != nil {
			return false, err
		}
		if st.Provider == string(types.InstanceStateNameTerminated) || st.Provider == string(types.InstanceStateNameShuttingDown) {
			return false, fmt.Errorf("aws: instance %s is %s: %w", id, st.Provider, ErrIncorrectState)
		}
		return st.State == state, nil
	})
}

// Start starts the instance and waits until it runs.
func (a AWSPower) Start(ctx context.Context, m Machine) error {
	c, err := a.client(m)
	if err != nil {
		return err
	}
	st, err := a.status(ctx, c, m.ServerID)
	if err != nil || st.State == PowerRunning {
		return err
	}
	if _, err := c.StartInstances(ctx, &ec2.StartInstancesInput{InstanceIds: []string{m.ServerID}}); err != nil {
		return awsError("StartInstances", err)
	}
	return a.waitFor(ctx, c, m.ServerID, PowerRunning)
}

// Stop stops the instance gracefully (EC2 shuts the OS down) and waits up
// to grace for it to be stopped, then stops it with Force; force does
// that at once. hard reports whether it was forced.
func (a AWSPower) Stop(ctx context.Context, m Machine, force bool, grace time.Duration) (hard bool, err error) {
	c, err := a.client(m)
	if err != nil {
		return false, err
	}
	st, err := a.status(ctx, c, m.ServerID)
	if err != nil || st.State == PowerStopped {
		return false, err
	}
	if !force {
		if _, err := c.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{m.ServerID}}); err != nil {
			return false, awsError("StopInstances", err)
		}
		gctx, cancel := context.WithTimeout(ctx, grace)
		err := a.waitFor(gctx, c, m.ServerID, PowerStopped)
		cancel()
		if err == nil {
			return false, nil
		}
		if ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
			return false, err
		}
	}
	if _, err := c.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{m.ServerID}, Force: aws.Bool(true)}); err != nil {
		return true, awsError("StopInstances (force)", err)
	}
	return true, a.waitFor(ctx, c, m.ServerID, PowerStopped)
}

// Reboot asks EC2 to reboot the running instance (EC2 reboots it hard if
// the OS does not within a few minutes); a stopped one is refused.
func (a AWSPower) Reboot(ctx context.Context, m Machine) error {
	c, err := a.client(m)
	if err != nil {
		return err
	}
	st, err := a.status(ctx, c, m.ServerID)
	if err != nil {
		return err
	}
	if st.State != PowerRunning {
		return fmt.Errorf("aws: reboot instance %s: it is %s: %w", m.ServerID, st.Provider, ErrIncorrectState)
	}
	if _, err := c.RebootInstances(ctx, &ec2.RebootInstancesInput{InstanceIds: []string{m.ServerID}}); err != nil {
		return awsError("RebootInstances", err)
	}
	return nil
}
