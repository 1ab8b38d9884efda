package domain

import (
	"github.com/google/uuid"
)

// Principal is who a request acts as: a user, in one organization, with a set
// of permissions. A request made with an API token carries the token's id and
// its scopes narrowed to what the token's creator may still do.
type Principal struct {
	UserID     uuid.UUID
	Email      string
	IsAdmin    bool // platform administrator (the bootstrap user, or one they made)
	OrgID      uuid.UUID
	Role       Role
	Perms      PermissionSet
	APITokenID uuid.UUID // uuid.Nil unless the credential is an API token
	HasOrg     bool      // false for a user who belongs to no organization
}

// ViaAPIToken reports whether the request was authenticated by an API token.
func (p *Principal) ViaAPIToken() bool { return p.APITokenID != uuid.Nil }

// Can reports whether the principal holds perm in its organization.
func (p *Principal) Can(perm Permission) bool { return p.HasOrg && p.Perms.Has(perm) }
