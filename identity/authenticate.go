package identity

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/uuid"

	"github.com/shardform/shardform/domain"
	"github.com/shardform/shardform/store"
)

// APITokenPrefix starts every API token.
const APITokenPrefix = "shardform_api_"

// Authenticate turns a bearer credential (an access token or an API token)
// into a Principal. orgID selects the organization for an access token
// (uuid.Nil: the user's first); an API token is bound to its own organization
// and any other orgID is answered as not found.
func (s *Service) Authenticate(ctx context.Context, credential string, orgID uuid.UUID) (*domain.Principal, error) {
	switch {
	case credential == "":
		return nil, domain.Unauthenticated("missing credentials: send Authorization: Bearer <token> or X-API-Key")
	case strings.HasPrefix(credential, APITokenPrefix):
		return s.authenticateAPIToken(ctx, credential, orgID)
	case looksLikeJWT(credential):
		return s.authenticateAccessToken(ctx, credential, orgID)
	}
	return nil, domain.Unauthenticated("invalid credentials")
}

func (s *Service) authenticateAccessToken(ctx context.Context, token string, orgID uuid.UUID) (*domain.Principal, error) {
	userID, version, err := s.parseAccessToken(token)
	if err != nil {
		return nil, err
	}
	row, err := s.q.GetPrincipalForUser(ctx, s.st.Pool, store.GetPrincipalForUserParams{
		UserID: userID, OrgID: uuid.NullUUID{UUID: orgID, Valid: orgID != uuid.Nil},
	})
	if store.IsNoRows(err) {
		return nil, domain.Unauthenticated("user no longer exists")
	}
	if err != nil {
		return nil, fmt.Errorf("authenticate: load user: %w", err)
	}
	if row.SessionVersion != version {
		return nil, domain.Unauthenticated("access token revoked (password changed): log in again")
	}
	p := &domain.Principal{UserID: row.ID, Email: row.Email, IsAdmin: row.IsAdmin}
	if row.OrganizationID == uuid.Nil {
		if orgID != uuid.Nil {
			return nil, domain.NotFound("organization")
		}
		p.Perms = domain.PermissionSet{}
		return p, nil
	}
	p.HasOrg = true
	p.OrgID = row.OrganizationID
	p.Role = domain.Role(row.Role)
	p.Perms = domain.EffectivePermissions(p.Role, toPermissions(row.Grants))
	return p, nil
}

func (s *Service) authenticateAPIToken(ctx context.Context, token string, orgID uuid.UUID) (*domain.Principal, error) {
	row, err := s.q.AuthenticateAPIToken(ctx, s.st.Pool, hashSecret(token))
	if store.IsNoRows(err) {
		return nil, domain.Unauthenticated("invalid, expired or deleted API token")
	}
	if err != nil {
		return nil, fmt.Errorf("authenticate: load API token: %w", err)
	}
	if orgID != uuid.Nil && orgID != row.OrganizationID {
		return nil, domain.NotFound("organization")
	}
	role := domain.Role(row.Role)
	current := domain.EffectivePermissions(role, toPermissions(row.Grants))
	return &domain.Principal{
		UserID: row.UserID, Email: row.Email, IsAdmin: false, // a token never carries platform admin rights
		OrgID: row.OrganizationID, HasOrg: true, Role: role, APITokenID: row.ID,
		// Scopes narrowed to what the creator may still do today.
		Perms: domain.NewPermissionSet(toPermissions(row.Scopes)).Intersect(current),
	}, nil
}

func toPermissions(ss []string) []domain.Permission {
	out := make([]domain.Permission, len(ss))
	for i, s := range ss {
		out[i] = domain.Permission(s)
	}
	return out
}

func fromPermissions(ps []domain.Permission) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = string(p)
	}
	return out
}
