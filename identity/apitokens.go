package identity

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/shardform/shardform/domain"
	"github.com/shardform/shardform/store"
)

// API token lifetimes, in seconds.
const (
	DefaultAPITokenTTL = 90 * 24 * 3600
	MinAPITokenTTL     = 60
	MaxAPITokenTTL     = 365 * 24 * 3600
)

// APITokenRequest is the body of POST /v1/api-tokens.
type APITokenRequest struct {
	Name      string              `json:"name"`
	ExpiresIn *int64              `json:"expires_in"` // seconds; default 90 days
	Scopes    []domain.Permission `json:"scopes"`
}

// APIToken is a token as the API shows it. Token (the secret) is set only in
// the answer to its creation.
type APIToken struct {
	ID             uuid.UUID           `json:"id"`
	Name           string              `json:"name"`
	Prefix         string              `json:"prefix"`
	OrganizationID uuid.UUID           `json:"organization_id"`
	Scopes         []domain.Permission `json:"scopes"`
	ExpiresAt      time.Time           `json:"expires_at"`
	LastUsedAt     *time.Time          `json:"last_used_at"`
	CreatedAt      time.Time           `json:"created_at"`
	Token          string              `json:"token,omitempty"`
}

func apiTokenView(t store.ApiToken) APIToken {
	return APIToken{ID: t.ID, Name: t.Name, Prefix: t.DisplayPrefix, OrganizationID: t.OrganizationID, Scopes: toPermissions(t.Scopes),
		ExpiresAt: t.ExpiresAt, LastUsedAt: t.LastUsedAt, CreatedAt: t.CreatedAt}
}

// CreateAPIToken mints a token bound to the caller's current organization.
// Its scopes must be permissions the caller holds there.
func (s *Service) CreateAPIToken(ctx context.Context, p *domain.Principal, req APITokenRequest) (APIToken, error) {
	if err := requireSession(p); err != nil {
		return APIToken{}, err
	}
	if !p.HasOrg {
		return APIToken{}, domain.Conflict("you belong to no organization: create one first")
	}
	name, err := domain.Name("name", req.Name, domain.MaxNameLength)
	if err != nil {
		return APIToken{}, err
	}
	ttl := int64(DefaultAPITokenTTL)
	if req.ExpiresIn != nil {
		ttl = *req.ExpiresIn
		if ttl < MinAPITokenTTL || ttl > MaxAPITokenTTL {
			return APIToken{}, domain.Invalid("expires_in", "must be between %d and %d seconds", MinAPITokenTTL, MaxAPITokenTTL)
		}
	}
	if len(req.Scopes) == 0 {
		names := make([]string, 0, len(domain.Catalog()))
		for _, c := range domain.Catalog() {
			names = append(names, string(c.Key))
		}
		return APIToken{}, domain.Invalid("scopes", "must list at least one permission (least privilege); the catalog: %s", strings.Join(names, ", "))
	}
	scopes, err := grantableScopes(p, req.Scopes)
	if err != nil {
		return APIToken{}, err
	}
	return s.mintAPIToken(ctx, s.st.Pool, p, name, time.Duration(ttl)*time.Second, scopes)
}

// grantableScopes checks requested scopes against the catalog and against
// what p holds in its organization, and answers them sorted without
// duplicates: a token never carries more than its creator may do.
func grantableScopes(p *domain.Principal, scopes []domain.Permission) ([]domain.Permission, error) {
	set := domain.NewPermissionSet()
	for i, sc := range scopes {
		if err := knownScope(i, sc); err != nil {
			return nil, err
		}
		if !p.Perms.Has(sc) {
			return nil, domain.Forbidden("scopes: you do not hold %s in this organization", sc)
		}
		set[sc] = struct{}{}
	}
	return set.Sorted(), nil
}

// knownScope refuses a scope (the i-th) that is not in the permission catalog.
func knownScope(i int, sc domain.Permission) error {
	if !domain.ValidPermission(sc) {
		return domain.Invalid(fmt.Sprintf("scopes[%d]", i), "unknown permission %q (GET /v1/permissions lists them)", sc)
	}
	return nil
}

// mintAPIToken stores a new token of p in p's organization (on db: the
// pool, or the caller's transaction) and answers it with its secret, which
// is not kept: only its hash is stored.
func (s *Service) mintAPIToken(ctx context.Context, db store.DBTX, p *domain.Principal, name string, ttl time.Duration, scopes []domain.Permission) (APIToken, error) {
	secret, hash, err := newSecret(APITokenPrefix)
	if err != nil {
		return APIToken{}, err
	}
	row, err := s.q.CreateAPIToken(ctx, db, store.CreateAPITokenParams{
		OrganizationID: p.OrgID, UserID: p.UserID, Name: name, DisplayPrefix: secret[:len(APITokenPrefix)+6],
		TokenHash: hash, Scopes: fromPermissions(scopes), ExpiresAt: s.now().Add(ttl),
	})
	if err != nil {
		return APIToken{}, fmt.Errorf("create API token: %w", err)
	}
	t := apiTokenView(row)
	t.Token = secret
	return t, nil
}

// ListAPITokens lists the caller's tokens in their current organization.
func (s *Service) ListAPITokens(ctx context.Context, p *domain.Principal, page domain.Page) ([]APIToken, int64, error) {
	if err := requireSession(p); err != nil {
		return nil, 0, err
	}
	if !p.HasOrg {
		return []APIToken{}, 0, nil
	}
	total, err := s.q.CountAPITokens(ctx, s.st.Pool, store.CountAPITokensParams{OrganizationID: p.OrgID, UserID: p.UserID})
	if err != nil {
		return nil, 0, fmt.Errorf("count API tokens: %w", err)
	}
	rows, err := s.q.ListAPITokens(ctx, s.st.Pool, store.ListAPITokensParams{OrganizationID: p.OrgID, UserID: p.UserID, Lim: page.Limit, Off: page.Offset()})
	if err != nil {
		return nil, 0, fmt.Errorf("list API tokens: %w", err)
	}
	out := make([]APIToken, len(rows))
	for i, r := range rows {
		out[i] = apiTokenView(r)
	}
	return out, total, nil
}

// DeleteAPIToken revokes one of the caller's tokens; it stops working at once.
func (s *Service) DeleteAPIToken(ctx context.Context, p *domain.Principal, id uuid.UUID) error {
	// A token may revoke itself (shardform logout), never another one.
	if p.APITokenID != id {
		if err := requireSession(p); err != nil {
			return err
		}
	}
	n, err := s.q.DeleteAPIToken(ctx, s.st.Pool, store.DeleteAPITokenParams{OrganizationID: p.OrgID, UserID: p.UserID, ID: id})
	if err != nil {
		return fmt.Errorf("delete API token %s: %w", id, err)
	}
	if n == 0 {
		return domain.NotFound("API token")
	}
	return nil
}
