package provision

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/shardform/shardform/providers"
	"github.com/shardform/shardform/store"
)

// JoinTokens mints and activates the registration tokens provisioned nodes
// join with (agent.Service).
type JoinTokens interface {
	// MintProvisionToken makes the request's one registration token (an
	// earlier unused one is deleted), valid from nothing until activated.
	MintProvisionToken(ctx context.Context, org, provisionID uuid.UUID) (string, error)
	// ActivateProvisionToken makes it valid from notBefore (nil: unchanged)
	// until until.
	ActivateProvisionToken(ctx context.Context, org, provisionID uuid.UUID, notBefore *time.Time, until time.Time) error
}

// JoinWindow is how long after its apply a provisioned node may still join.
const JoinWindow = time.Hour

// UseJoin makes provisioned nodes join by themselves: drivers with
// cloud-init render the bootstrap of url with a registration token minted
// for each plan, valid from its apply until JoinWindow after it.
func (s *Service) UseJoin(j JoinTokens, url string) { s.joins, s.joinURL = j, url }

// joinOf is the Join a driver renders (nil: none).
func (s *Service) joinOf(d providers.Driver) *providers.Join {
	if s.joins == nil || s.joinURL == "" || !providers.JoinsByCloudInit(d) {
		return nil
	}
	return &providers.Join{URL: s.joinURL}
}

// joinVariable sets the registration token's variable of a configuration
// that joins: a fresh token for a plan (mint), else a placeholder (destroy
// and refresh: the user data is read only when the machine is created).
func (s *Service) joinVariable(ctx context.Context, r store.ProvisionRequest, d providers.Driver, vars map[string]string, mint bool) (map[string]string, error) {
	if s.joinOf(d) == nil {
		return vars, nil
	}
	if vars == nil {
		vars = map[string]string{}
	}
	vars[providers.RegistrationTokenVariable] = "unused"
	if mint {
		tok, err := s.joins.MintProvisionToken(ctx, r.OrganizationID, r.ID)
		if err != nil {
			return nil, fmt.Errorf("registration token of %s: %w", r.ID, err)
		}
		vars[providers.RegistrationTokenVariable] = tok
	}
	return vars, nil
}

// activateJoin opens the token's window: from the apply's start until
// JoinWindow after the longest the apply may take (its context's deadline;
// narrowed to JoinWindow after its end by closeJoin).
func (s *Service) activateJoin(ctx context.Context, r store.ProvisionRequest, d providers.Driver) error {
	if s.joinOf(d) == nil {
		return nil
	}
	now := s.now()
	until := now.Add(2 * JoinWindow)
	if dl, ok := ctx.Deadline(); ok {
		until = now.Add(time.Until(dl) + JoinWindow)
	}
	return s.joins.ActivateProvisionToken(ctx, r.OrganizationID, r.ID, &now, until)
}

func (s *Service) closeJoin(ctx context.Context, r store.ProvisionRequest, d providers.Driver) error {
	if s.joinOf(d) == nil {
		return nil
	}
	return s.joins.ActivateProvisionToken(ctx, r.OrganizationID, r.ID, nil, s.now().Add(JoinWindow))
}
