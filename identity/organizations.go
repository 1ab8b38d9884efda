package identity

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/shardform/shardform/domain"
	"github.com/shardform/shardform/store"
)

// InviteTTL is how long an invitation stays valid.
const InviteTTL = 7 * 24 * time.Hour

// Organization is an organization as the API shows it, with the caller's role.
type Organization struct {
	ID        uuid.UUID   `json:"id"`
	Name      string      `json:"name"`
	Role      domain.Role `json:"role"`
	CreatedAt time.Time   `json:"created_at"`
}

func orgView(id uuid.UUID, name, role string, created time.Time) Organization {
	return Organization{ID: id, Name: name, Role: domain.Role(role), CreatedAt: created}
}

// Member is a membership as the API shows it.
type Member struct {
	UserID   uuid.UUID           `json:"user_id"`
	Email    string              `json:"email"`
	Role     domain.Role         `json:"role"`
	Grants   []domain.Permission `json:"grants"`
	JoinedAt time.Time           `json:"joined_at"`
}

// Invite is a pending invitation. Token is set only when it is created.
type Invite struct {
	ID        uuid.UUID   `json:"id"`
	Email     string      `json:"email"`
	Role      domain.Role `json:"role"`
	ExpiresAt time.Time   `json:"expires_at"`
	CreatedAt time.Time   `json:"created_at"`
	Token     string      `json:"token,omitempty"`
	AcceptURL string      `json:"accept_url,omitempty"`
}

// MemberPermissions is a member's role permissions, grants and the union.
type MemberPermissions struct {
	UserID          uuid.UUID           `json:"user_id"`
	Role            domain.Role         `json:"role"`
	RolePermissions []domain.Permission `json:"role_permissions"`
	Grants          []domain.Permission `json:"grants"`
	Effective       []domain.Permission `json:"effective"`
}

// access is what the caller may do in one organization.
type access struct {
	role  domain.Role
	perms domain.PermissionSet
}

func (a access) require(perm domain.Permission) error {
	if !a.perms.Has(perm) {
		return domain.Forbidden("missing permission %s", perm)
	}
	return nil
}

// accessTo resolves the caller's rights in orgID. A non-member (or a token of
// another organization) gets ErrNotFound: the organization's existence is not
// revealed.
func (s *Service) accessTo(ctx context.Context, db store.DBTX, p *domain.Principal, orgID uuid.UUID) (access, error) {
	if p.ViaAPIToken() {
		if orgID != p.OrgID {
			return access{}, domain.NotFound("organization")
		}
		return access{role: p.Role, perms: p.Perms}, nil
	}
	m, err := s.q.GetMembership(ctx, db, store.GetMembershipParams{OrganizationID: orgID, UserID: p.UserID})
	if store.IsNoRows(err) {
		return access{}, domain.NotFound("organization")
	}
	if err != nil {
		return access{}, fmt.Errorf("load membership: %w", err)
	}
	role := domain.Role(m.Role)
	return access{role: role, perms: domain.EffectivePermissions(role, toPermissions(m.Grants))}, nil
}

func validateOrgName(name string) (string, error) {
	return domain.Name("name", name, domain.MaxNameLength)
}

func (s *Service) createOrganization(ctx context.Context, tx pgx.Tx, owner uuid.UUID, name string) (Organization, error) {
	o, err := s.q.CreateOrganization(ctx, tx, name)
	if err != nil {
		return Organization{}, fmt.Errorf("create organization: %w", err)
	}
	if _, err := s.q.AddMembership(ctx, tx, store.AddMembershipParams{OrganizationID: o.ID, UserID: owner, Role: string(domain.RoleOwner), Grants: []string{}}); err != nil {
		return Organization{}, fmt.Errorf("create organization: add owner: %w", err)
	}
	return orgView(o.ID, o.Name, string(domain.RoleOwner), o.CreatedAt), nil
}

// CreateOrganization creates an organization owned by the caller.
func (s *Service) CreateOrganization(ctx context.Context, p *domain.Principal, name string) (Organization, error) {
	if err := requireSession(p); err != nil {
		return Organization{}, err
	}
	name, err := validateOrgName(name)
	if err != nil {
		return Organization{}, err
	}
	var org Organization
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		org, err = s.createOrganization(ctx, tx, p.UserID, name)
		return err
	})
	return org, err
}

// ListOrganizations lists the caller's organizations (a token: only its own).
func (s *Service) ListOrganizations(ctx context.Context, p *domain.Principal, page domain.Page) ([]Organization, int64, error) {
	if p.ViaAPIToken() {
		org, err := s.GetOrganization(ctx, p, p.OrgID)
		if err != nil {
			return nil, 0, err
		}
		if page.Page > 1 {
			return []Organization{}, 1, nil
		}
		return []Organization{org}, 1, nil
	}
	total, err := s.q.CountOrganizationsForUser(ctx, s.st.Pool, p.UserID)
	if err != nil {
		return nil, 0, fmt.Errorf("count organizations: %w", err)
	}
	rows, err := s.q.ListOrganizationsForUser(ctx, s.st.Pool, store.ListOrganizationsForUserParams{UserID: p.UserID, Lim: page.Limit, Off: page.Offset()})
	if err != nil {
		return nil, 0, fmt.Errorf("list organizations: %w", err)
	}
	out := make([]Organization, len(rows))
	for i, o := range rows {
		out[i] = orgView(o.ID, o.Name, o.Role, o.CreatedAt)
	}
	return out, total, nil
}

// GetOrganization returns one of the caller's organizations.
func (s *Service) GetOrganization(ctx context.Context, p *domain.Principal, id uuid.UUID) (Organization, error) {
	if p.ViaAPIToken() && id != p.OrgID {
		return Organization{}, domain.NotFound("organization")
	}
	o, err := s.q.GetOrganization(ctx, s.st.Pool, store.GetOrganizationParams{ID: id, UserID: p.UserID})
	if store.IsNoRows(err) {
		return Organization{}, domain.NotFound("organization")
	}
	if err != nil {
		return Organization{}, fmt.Errorf("get organization %s: %w", id, err)
	}
	return orgView(o.ID, o.Name, o.Role, o.CreatedAt), nil
}

// UpdateOrganization renames an organization (organization:admin).
// Like every change to the organization itself, it needs a session: an API
// token cannot manage organizations.
func (s *Service) UpdateOrganization(ctx context.Context, p *domain.Principal, id uuid.UUID, name string) (Organization, error) {
	var org Organization
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		a, err := s.accessTo(ctx, tx, p, id) // another organization stays 404, to tokens too
		if err != nil {
			return err
		}
		if err := requireSession(p); err != nil {
			return err
		}
		if err := a.require(domain.PermOrganizationAdmin); err != nil {
			return err
		}
		name, err := validateOrgName(name)
		if err != nil {
			return err
		}
		o, err := s.q.UpdateOrganization(ctx, tx, store.UpdateOrganizationParams{ID: id, Name: name})
		if err != nil {
			return fmt.Errorf("update organization %s: %w", id, err)
		}
		org = orgView(o.ID, o.Name, string(a.role), o.CreatedAt)
		return nil
	})
	return org, err
}

// DeleteOrganization deletes an organization and everything in it (owners only).
func (s *Service) DeleteOrganization(ctx context.Context, p *domain.Principal, id uuid.UUID) error {
	if err := requireSession(p); err != nil {
		return err
	}
	return s.inTx(ctx, func(tx pgx.Tx) error {
		a, err := s.accessTo(ctx, tx, p, id)
		if err != nil {
			return err
		}
		if a.role != domain.RoleOwner {
			return domain.Forbidden("only an owner may delete the organization")
		}
		if _, err := s.q.DeleteOrganization(ctx, tx, id); err != nil {
			return fmt.Errorf("delete organization %s: %w", id, err)
		}
		return nil
	})
}

// ListMembers lists an organization's members (members:read).
func (s *Service) ListMembers(ctx context.Context, p *domain.Principal, orgID uuid.UUID, page domain.Page) ([]Member, int64, error) {
	a, err := s.accessTo(ctx, s.st.Pool, p, orgID)
	if err != nil {
		return nil, 0, err
	}
	if err := a.require(domain.PermMembersRead); err != nil {
		return nil, 0, err
	}
	total, err := s.q.CountMembers(ctx, s.st.Pool, orgID)
	if err != nil {
		return nil, 0, fmt.Errorf("count members: %w", err)
	}
	rows, err := s.q.ListMembers(ctx, s.st.Pool, store.ListMembersParams{OrganizationID: orgID, Lim: page.Limit, Off: page.Offset()})
	if err != nil {
		return nil, 0, fmt.Errorf("list members: %w", err)
	}
	out := make([]Member, len(rows))
	for i, m := range rows {
		out[i] = Member{UserID: m.UserID, Email: m.Email, Role: domain.Role(m.Role), Grants: toPermissions(m.Grants), JoinedAt: m.CreatedAt}
	}
	return out, total, nil
}

// InviteRequest is the body of an invitation.
type InviteRequest struct {
	Email string      `json:"email"`
	Role  domain.Role `json:"role"`
}

// InviteMember creates an invitation (members:admin). Its token is returned
// once; only its hash is stored.
func (s *Service) InviteMember(ctx context.Context, p *domain.Principal, orgID uuid.UUID, req InviteRequest) (Invite, error) {
	if err := requireSession(p); err != nil {
		return Invite{}, err
	}
	var inv Invite
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		a, err := s.accessTo(ctx, tx, p, orgID)
		if err != nil {
			return err
		}
		if err := a.require(domain.PermMembersAdmin); err != nil {
			return err
		}
		email, err := validateEmail(req.Email)
		if err != nil {
			return err
		}
		if req.Role == "" {
			req.Role = domain.RoleMember
		}
		if !domain.ValidRole(req.Role) {
			return domain.Invalid("role", "must be one of owner, admin, member, viewer")
		}
		if req.Role.Rank() > a.role.Rank() {
			return domain.Forbidden("you cannot invite with a role above your own (%s)", a.role)
		}
		u, err := s.q.GetUserByEmail(ctx, tx, email)
		switch {
		case err == nil:
			_, err := s.q.GetMembership(ctx, tx, store.GetMembershipParams{OrganizationID: orgID, UserID: u.ID})
			if err == nil {
				return domain.Conflict("%s is already a member", email)
			}
			if !store.IsNoRows(err) {
				return fmt.Errorf("invite: look up membership: %w", err)
			}
		case !store.IsNoRows(err):
			return fmt.Errorf("invite: look up user: %w", err)
		}
		token, hash, err := newSecret("sfi_")
		if err != nil {
			return err
		}
		row, err := s.q.CreateInvite(ctx, tx, store.CreateInviteParams{
			OrganizationID: orgID, Email: email, Role: string(req.Role), TokenHash: hash,
			InvitedBy: uuid.NullUUID{UUID: p.UserID, Valid: true}, ExpiresAt: s.now().Add(InviteTTL),
		})
		if err != nil {
			return fmt.Errorf("create invite: %w", err)
		}
		inv = inviteView(row)
		inv.Token = token
		inv.AcceptURL = "/v1/invites/" + token + "/accept"
		return nil
	})
	return inv, err
}

func inviteView(r store.Invite) Invite {
	return Invite{ID: r.ID, Email: r.Email, Role: domain.Role(r.Role), ExpiresAt: r.ExpiresAt, CreatedAt: r.CreatedAt}
}

// ListInvites lists pending invitations (members:admin).
func (s *Service) ListInvites(ctx context.Context, p *domain.Principal, orgID uuid.UUID, page domain.Page) ([]Invite, int64, error) {
	a, err := s.accessTo(ctx, s.st.Pool, p, orgID)
	if err != nil {
		return nil, 0, err
	}
	if err := a.require(domain.PermMembersAdmin); err != nil {
		return nil, 0, err
	}
	total, err := s.q.CountInvites(ctx, s.st.Pool, orgID)
	if err != nil {
		return nil, 0, fmt.Errorf("count invites: %w", err)
	}
	rows, err := s.q.ListInvites(ctx, s.st.Pool, store.ListInvitesParams{OrganizationID: orgID, Lim: page.Limit, Off: page.Offset()})
	if err != nil {
		return nil, 0, fmt.Errorf("list invites: %w", err)
	}
	out := make([]Invite, len(rows))
	for i, r := range rows {
		out[i] = inviteView(r)
	}
	return out, total, nil
}

// DeleteInvite withdraws an invitation (members:admin).
func (s *Service) DeleteInvite(ctx context.Context, p *domain.Principal, orgID, inviteID uuid.UUID) error {
	if err := requireSession(p); err != nil {
		return err
	}
	return s.inTx(ctx, func(tx pgx.Tx) error {
		a, err := s.accessTo(ctx, tx, p, orgID)
		if err != nil {
			return err
		}
		if err := a.require(domain.PermMembersAdmin); err != nil {
			return err
		}
		n, err := s.q.DeleteInvite(ctx, tx, store.DeleteInviteParams{OrganizationID: orgID, ID: inviteID})
		if err != nil {
			return fmt.Errorf("delete invite %s: %w", inviteID, err)
		}
		if n == 0 {
			return domain.NotFound("invite")
		}
		return nil
	})
}

// AcceptInvite makes the caller a member. The invite must be addressed to
// the caller's email; it is used up.
func (s *Service) AcceptInvite(ctx context.Context, p *domain.Principal, token string) (Organization, error) {
	if err := requireSession(p); err != nil {
		return Organization{}, err
	}
	var org Organization
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		inv, err := s.q.TakeInvite(ctx, tx, hashSecret(token))
		if store.IsNoRows(err) {
			return domain.NotFound("invite (unknown, used or expired)")
		}
		if err != nil {
			return fmt.Errorf("accept invite: %w", err)
		}
		if inv.Email != p.Email {
			return domain.Forbidden("this invite was issued to a different email address")
		}
		if _, err := s.q.AddMembership(ctx, tx, store.AddMembershipParams{OrganizationID: inv.OrganizationID, UserID: p.UserID, Role: inv.Role, Grants: []string{}}); err != nil {
			if store.IsUniqueViolation(err) {
				return domain.Conflict("you are already a member of this organization")
			}
			return fmt.Errorf("accept invite: %w", err)
		}
		o, err := s.q.GetOrganization(ctx, tx, store.GetOrganizationParams{ID: inv.OrganizationID, UserID: p.UserID})
		if err != nil {
			return fmt.Errorf("accept invite: %w", err)
		}
		org = orgView(o.ID, o.Name, o.Role, o.CreatedAt)
		return nil
	})
	return org, err
}

// memberTarget loads the member a management call is about.
func (s *Service) memberTarget(ctx context.Context, db store.DBTX, orgID, userID uuid.UUID) (store.GetMembershipRow, error) {
	m, err := s.q.GetMembership(ctx, db, store.GetMembershipParams{OrganizationID: orgID, UserID: userID})
	if store.IsNoRows(err) {
		return m, domain.NotFound("member")
	}
	if err != nil {
		return m, fmt.Errorf("load member %s: %w", userID, err)
	}
	return m, nil
}

// lastOwnerCheck refuses a change that would leave the organization with no owner.
func (s *Service) lastOwnerCheck(ctx context.Context, tx pgx.Tx, orgID uuid.UUID, target store.GetMembershipRow) error {
	if domain.Role(target.Role) != domain.RoleOwner {
		return nil
	}
	// Concurrent demotions or departures of two owners must not both pass.
	if err := s.q.LockOrganization(ctx, tx, orgID); err != nil {
		return fmt.Errorf("lock organization: %w", err)
	}
	n, err := s.q.CountOwners(ctx, tx, orgID)
	if err != nil {
		return fmt.Errorf("count owners: %w", err)
	}
	if n <= 1 {
		return domain.Conflict("an organization must keep at least one owner")
	}
	return nil
}

// RemoveMember removes a member (members:admin), or lets the caller leave.
func (s *Service) RemoveMember(ctx context.Context, p *domain.Principal, orgID, userID uuid.UUID) error {
	if err := requireSession(p); err != nil {
		return err
	}
	return s.inTx(ctx, func(tx pgx.Tx) error {
		a, err := s.accessTo(ctx, tx, p, orgID)
		if err != nil {
			return err
		}
		target, err := s.memberTarget(ctx, tx, orgID, userID)
		if err != nil {
			return err
		}
		if userID != p.UserID {
			if err := a.require(domain.PermMembersAdmin); err != nil {
				return err
			}
			if domain.Role(target.Role) == domain.RoleOwner && a.role != domain.RoleOwner {
				return domain.Forbidden("only an owner may remove an owner")
			}
			if domain.Role(target.Role).Rank() > a.role.Rank() {
				return domain.Forbidden("you cannot remove a member above your role")
			}
		}
		if err := s.lastOwnerCheck(ctx, tx, orgID, target); err != nil {
			return err
		}
		if _, err := s.q.DeleteMembership(ctx, tx, store.DeleteMembershipParams{OrganizationID: orgID, UserID: userID}); err != nil {
			return fmt.Errorf("remove member %s: %w", userID, err)
		}
		return nil
	})
}

// SetMemberRole changes a member's role (members:admin; owners only for anything touching the owner role).
func (s *Service) SetMemberRole(ctx context.Context, p *domain.Principal, orgID, userID uuid.UUID, role domain.Role) (Member, error) {
	if err := requireSession(p); err != nil {
		return Member{}, err
	}
	var out Member
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		a, err := s.accessTo(ctx, tx, p, orgID)
		if err != nil {
			return err
		}
		if err := a.require(domain.PermMembersAdmin); err != nil {
			return err
		}
		if !domain.ValidRole(role) {
			return domain.Invalid("role", "must be one of owner, admin, member, viewer")
		}
		target, err := s.memberTarget(ctx, tx, orgID, userID)
		if err != nil {
			return err
		}
		if (role == domain.RoleOwner || domain.Role(target.Role) == domain.RoleOwner) && a.role != domain.RoleOwner {
			return domain.Forbidden("only an owner may grant or take away the owner role")
		}
		if role.Rank() > a.role.Rank() {
			return domain.Forbidden("you cannot give a role above your own (%s)", a.role)
		}
		if domain.Role(target.Role).Rank() > a.role.Rank() {
			return domain.Forbidden("you cannot change the role of a member above your role")
		}
		if role != domain.RoleOwner {
			if err := s.lastOwnerCheck(ctx, tx, orgID, target); err != nil {
				return err
			}
		}
		if err := s.q.UpdateMemberRole(ctx, tx, store.UpdateMemberRoleParams{OrganizationID: orgID, UserID: userID, Role: string(role)}); err != nil {
			return fmt.Errorf("set role of %s: %w", userID, err)
		}
		out = Member{UserID: userID, Email: target.Email, Role: role, Grants: toPermissions(target.Grants), JoinedAt: target.CreatedAt}
		return nil
	})
	return out, err
}

// GetMemberPermissions shows a member's permissions (members:read, or oneself).
func (s *Service) GetMemberPermissions(ctx context.Context, p *domain.Principal, orgID, userID uuid.UUID) (MemberPermissions, error) {
	a, err := s.accessTo(ctx, s.st.Pool, p, orgID)
	if err != nil {
		return MemberPermissions{}, err
	}
	if userID != p.UserID {
		if err := a.require(domain.PermMembersRead); err != nil {
			return MemberPermissions{}, err
		}
	}
	target, err := s.memberTarget(ctx, s.st.Pool, orgID, userID)
	if err != nil {
		return MemberPermissions{}, err
	}
	return memberPermissions(target.UserID, domain.Role(target.Role), toPermissions(target.Grants)), nil
}

func memberPermissions(userID uuid.UUID, role domain.Role, grants []domain.Permission) MemberPermissions {
	return MemberPermissions{
		UserID: userID, Role: role,
		RolePermissions: domain.NewPermissionSet(domain.RolePermissions(role)).Sorted(),
		Grants:          grants,
		Effective:       domain.EffectivePermissions(role, grants).Sorted(),
	}
}

// SetMemberGrants replaces a member's extra grants (members:admin). A caller
// can only grant permissions they hold themselves.
func (s *Service) SetMemberGrants(ctx context.Context, p *domain.Principal, orgID, userID uuid.UUID, grants []domain.Permission) (MemberPermissions, error) {
	if grants == nil {
		return MemberPermissions{}, domain.Invalid("grants", "is required (an empty list removes every grant)")
	}
	set := domain.NewPermissionSet()
	for i, g := range grants {
		if !domain.ValidPermission(g) {
			return MemberPermissions{}, domain.Invalid(fmt.Sprintf("grants[%d]", i), "unknown permission %q (GET /v1/permissions lists them)", g)
		}
		set[g] = struct{}{}
	}
	sorted := set.Sorted()
	return s.changeGrants(ctx, p, orgID, userID, func([]domain.Permission) ([]domain.Permission, []domain.Permission, error) {
		return sorted, sorted, nil
	})
}

// AddMemberGrant gives a member one extra grant (members:admin), which the
// caller must hold. Granting one the member has already is no change.
func (s *Service) AddMemberGrant(ctx context.Context, p *domain.Principal, orgID, userID uuid.UUID, perm domain.Permission) (MemberPermissions, error) {
	if perm == "" {
		return MemberPermissions{}, domain.Invalid("permission", "is required")
	}
	if !domain.ValidPermission(perm) {
		return MemberPermissions{}, domain.Invalid("permission", "unknown permission %q (GET /v1/permissions lists them)", perm)
	}
	return s.changeGrants(ctx, p, orgID, userID, func(current []domain.Permission) ([]domain.Permission, []domain.Permission, error) {
		set := domain.NewPermissionSet(current)
		set[perm] = struct{}{}
		return set.Sorted(), []domain.Permission{perm}, nil
	})
}

// RemoveMemberGrant takes one grant away (members:admin).
func (s *Service) RemoveMemberGrant(ctx context.Context, p *domain.Principal, orgID, userID uuid.UUID, perm domain.Permission) (MemberPermissions, error) {
	return s.changeGrants(ctx, p, orgID, userID, func(grants []domain.Permission) ([]domain.Permission, []domain.Permission, error) {
		i := slices.Index(grants, perm)
		if i < 0 {
			return nil, nil, domain.NotFound("grant")
		}
		return slices.Delete(grants, i, i+1), nil, nil
	})
}

// changeGrants is the one path that changes a member's grants: a session
// with members:admin, on a member not above the caller's role; next turns
// the current grants into the new ones and names those the caller must hold.
func (s *Service) changeGrants(ctx context.Context, p *domain.Principal, orgID, userID uuid.UUID,
	next func(current []domain.Permission) (grants, mustHold []domain.Permission, err error)) (MemberPermissions, error) {
	if err := requireSession(p); err != nil {
		return MemberPermissions{}, err
	}
	var out MemberPermissions
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		a, err := s.accessTo(ctx, tx, p, orgID)
		if err != nil {
			return err
		}
		if err := a.require(domain.PermMembersAdmin); err != nil {
			return err
		}
		target, err := s.memberTarget(ctx, tx, orgID, userID)
		if err != nil {
			return err
		}
		if domain.Role(target.Role).Rank() > a.role.Rank() {
			return domain.Forbidden("you cannot change the grants of a member above your role")
		}
		grants, mustHold, err := next(toPermissions(target.Grants))
		if err != nil {
			return err
		}
		for _, g := range mustHold {
			if !a.perms.Has(g) {
				return domain.Forbidden("you cannot grant %s: you do not hold it", g)
			}
		}
		if err := s.q.SetMemberGrants(ctx, tx, store.SetMemberGrantsParams{OrganizationID: orgID, UserID: userID, Grants: fromPermissions(grants)}); err != nil {
			return fmt.Errorf("set grants of %s: %w", userID, err)
		}
		out = memberPermissions(userID, domain.Role(target.Role), grants)
		return nil
	})
	return out, err
}
