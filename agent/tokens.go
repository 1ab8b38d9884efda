package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/shardform/shardform/domain"
	"github.com/shardform/shardform/store"
)

// TokenRequest is the body of POST /v1/nodes/register-token.
type TokenRequest struct {
	// Name is the name the registered node gets (default: its hostname).
	Name *string `json:"name"`
	// Labels are the registered node's labels.
	Labels map[string]string `json:"labels"`
	// ExpiresIn is the token's lifetime in seconds (default 1 h, at most 7 days).
	ExpiresIn *int64 `json:"expires_in"`
	// Uses is how many registrations the token allows (default 1).
	Uses *int `json:"uses"`
}

// RegistrationToken is a registration token as the API shows it; Token
// (the secret) only in the answer to its creation.
type RegistrationToken struct {
	ID          uuid.UUID         `json:"id"`
	Name        string            `json:"name"`
	Labels      map[string]string `json:"labels"`
	Prefix      string            `json:"prefix"`
	ProvisionID *uuid.UUID        `json:"provision_id"`
	Uses        int32             `json:"uses"`
	UsesAllowed int32             `json:"uses_allowed"`
	NotBefore   time.Time         `json:"not_before"`
	ExpiresAt   time.Time         `json:"expires_at"`
	LastUsedAt  *time.Time        `json:"last_used_at"`
	CreatedAt   time.Time         `json:"created_at"`
	Token       string            `json:"token,omitempty"`
}

func tokenView(t store.NodeRegistrationToken) RegistrationToken {
	out := RegistrationToken{ID: t.ID, Name: t.Name, Labels: decodeLabels(t.Labels), Prefix: t.DisplayPrefix,
		Uses: t.Uses, UsesAllowed: t.UsesAllowed, NotBefore: t.NotBefore, ExpiresAt: t.ExpiresAt,
		LastUsedAt: t.LastUsedAt, CreatedAt: t.CreatedAt}
	if t.ProvisionID.Valid {
		id := t.ProvisionID.UUID
		out.ProvisionID = &id
	}
	return out
}

// CreateToken mints a registration token in the caller's organization
// (nodes:write). The secret is returned once and stored hashed.
func (s *Service) CreateToken(ctx context.Context, p *domain.Principal, req TokenRequest) (RegistrationToken, error) {
	if err := need(p, domain.PermNodesWrite); err != nil {
		return RegistrationToken{}, err
	}
	var name string
	if req.Name != nil && *req.Name != "" {
		var err error
		if name, err = domain.Name("name", *req.Name, domain.MaxNameLength); err != nil {
			return RegistrationToken{}, err
		}
	}
	if err := domain.Labels("labels", req.Labels); err != nil {
		return RegistrationToken{}, err
	}
	ttl := DefaultTokenTTL
	if req.ExpiresIn != nil {
		ttl = time.Duration(*req.ExpiresIn) * time.Second
		if ttl < MinTokenTTL || ttl > MaxTokenTTL {
			return RegistrationToken{}, domain.Invalid("expires_in", "must be between %d and %d seconds", int64(MinTokenTTL/time.Second), int64(MaxTokenTTL/time.Second))
		}
	}
	uses := 1
	if req.Uses != nil {
		uses = *req.Uses
		if uses < 1 || uses > MaxTokenUses {
			return RegistrationToken{}, domain.Invalid("uses", "must be between 1 and %d", MaxTokenUses)
		}
	}
	now := s.now()
	return s.mint(ctx, store.CreateRegistrationTokenParams{
		OrganizationID: p.OrgID, CreatedBy: uuid.NullUUID{UUID: p.UserID, Valid: p.UserID != uuid.Nil},
		Name: name, UsesAllowed: int32(uses), NotBefore: now, ExpiresAt: now.Add(ttl),
	}, req.Labels)
}

// MintProvisionToken mints the single-use registration token of a
// provision request (its cloud-init joins with it): it registers only that
// request's node, and only once activated (ActivateProvisionToken, at the
// apply). An earlier unused token of the request is deleted: one token per
// request, the one of its latest plan.
func (s *Service) MintProvisionToken(ctx context.Context, org, provisionID uuid.UUID) (string, error) {
	var secret string
	err := s.st.InTx(ctx, func(tx pgx.Tx) error {
		if err := s.q.DeleteUnusedProvisionTokens(ctx, tx, store.DeleteUnusedProvisionTokensParams{OrganizationID: org, ProvisionID: uuid.NullUUID{UUID: provisionID, Valid: true}}); err != nil {
			return fmt.Errorf("mint provision token: %w", err)
		}
		// Valid from nothing until the apply opens its window.
		never := s.now().AddDate(100, 0, 0)
		t, err := s.mintOn(ctx, tx, store.CreateRegistrationTokenParams{
			OrganizationID: org, ProvisionID: uuid.NullUUID{UUID: provisionID, Valid: true},
			UsesAllowed: 1, NotBefore: never, ExpiresAt: never,
		}, nil)
		secret = t.Token
		return err
	})
	return secret, err
}

// ActivateProvisionToken sets the window of the request's unused token:
// valid from notBefore (nil: unchanged) until until.
func (s *Service) ActivateProvisionToken(ctx context.Context, org, provisionID uuid.UUID, notBefore *time.Time, until time.Time) error {
	if _, err := s.q.ActivateProvisionTokens(ctx, s.st.Pool, store.ActivateProvisionTokensParams{
		OrganizationID: org, ProvisionID: uuid.NullUUID{UUID: provisionID, Valid: true}, NotBefore: notBefore, ExpiresAt: until,
	}); err != nil {
		return fmt.Errorf("activate provision token: %w", err)
	}
	return nil
}

func (s *Service) mint(ctx context.Context, arg store.CreateRegistrationTokenParams, labels map[string]string) (RegistrationToken, error) {
	return s.mintOn(ctx, s.st.Pool, arg, labels)
}

func (s *Service) mintOn(ctx context.Context, db store.DBTX, arg store.CreateRegistrationTokenParams, labels map[string]string) (RegistrationToken, error) {
	if labels == nil {
		labels = map[string]string{}
	}
	raw, err := json.Marshal(labels)
	if err != nil {
		return RegistrationToken{}, err
	}
	secret, hash, err := newSecret(RegistrationTokenPrefix)
	if err != nil {
		return RegistrationToken{}, err
	}
	arg.Labels, arg.TokenHash, arg.DisplayPrefix = raw, hash, displayPrefix(secret, RegistrationTokenPrefix)
	row, err := s.q.CreateRegistrationToken(ctx, db, arg)
	if err != nil {
		return RegistrationToken{}, fmt.Errorf("create registration token: %w", err)
	}
	out := tokenView(row)
	out.Token = secret
	return out, nil
}

// ListTokens lists the organization's registration tokens, newest first
// (nodes:write: they mint nodes).
func (s *Service) ListTokens(ctx context.Context, p *domain.Principal, page domain.Page) ([]RegistrationToken, int64, error) {
	if err := need(p, domain.PermNodesWrite); err != nil {
		return nil, 0, err
	}
	total, err := s.q.CountRegistrationTokens(ctx, s.st.Pool, p.OrgID)
	if err != nil {
		return nil, 0, fmt.Errorf("count registration tokens: %w", err)
	}
	rows, err := s.q.ListRegistrationTokens(ctx, s.st.Pool, store.ListRegistrationTokensParams{OrganizationID: p.OrgID, Lim: page.Limit, Off: page.Offset()})
	if err != nil {
		return nil, 0, fmt.Errorf("list registration tokens: %w", err)
	}
	out := make([]RegistrationToken, len(rows))
	for i, r := range rows {
		out[i] = tokenView(r)
	}
	return out, total, nil
}

// DeleteToken deletes a registration token: it registers nothing more.
// Nodes it registered keep their agent tokens.
func (s *Service) DeleteToken(ctx context.Context, p *domain.Principal, id uuid.UUID) error {
	if err := need(p, domain.PermNodesWrite); err != nil {
		return err
	}
	n, err := s.q.DeleteRegistrationToken(ctx, s.st.Pool, store.DeleteRegistrationTokenParams{OrganizationID: p.OrgID, ID: id})
	if err != nil {
		return fmt.Errorf("delete registration token %s: %w", id, err)
	}
	if n == 0 {
		return domain.NotFound("registration token")
	}
	return nil
}
