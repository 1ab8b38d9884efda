package domain

import (
	"slices"
	"sort"
)

// Permission is a coarse, resource-named right such as "nodes:read".
type Permission string

// The permission catalog. Keys never change meaning once released.
const (
	PermNodesRead         Permission = "nodes:read"
	PermNodesWrite        Permission = "nodes:write"
	PermProvisionRead     Permission = "provision:read"
	PermProvisionWrite    Permission = "provision:write"
	PermCredentialsRead   Permission = "credentials:read"
	PermCredentialsWrite  Permission = "credentials:write"
	PermDNSRead           Permission = "dns:read"
	PermDNSWrite          Permission = "dns:write"
	PermSSHSign           Permission = "ssh:sign"
	PermSSHAdmin          Permission = "ssh:admin"
	PermPlannerRead       Permission = "planner:read"
	PermPlannerWrite      Permission = "planner:write"
	PermMembersRead       Permission = "members:read"
	PermMembersAdmin      Permission = "members:admin"
	PermOrganizationAdmin Permission = "organization:admin"
	PermAuditRead         Permission = "audit:read"
	PermStateWrite        Permission = "state:write"
)

// PermissionInfo describes one catalog entry.
type PermissionInfo struct {
	Key         Permission `json:"key"`
	Description string     `json:"description"`
}

// Catalog lists every permission with what it allows, in a stable order.
func Catalog() []PermissionInfo {
	return []PermissionInfo{
		{PermNodesRead, "list and read nodes and the instances placed on them"},
		{PermNodesWrite, "update and delete nodes; place, move and remove instances"},
		{PermProvisionRead, "list provision requests, plans and logs"},
		{PermProvisionWrite, "create, plan, apply and destroy provision requests"},
		{PermCredentialsRead, "list cloud credentials (never their secrets)"},
		{PermCredentialsWrite, "create, update, verify and delete cloud credentials"},
		{PermDNSRead, "list DNS records"},
		{PermDNSWrite, "create and delete DNS records"},
		{PermSSHSign, "obtain short-lived SSH certificates"},
		{PermSSHAdmin, "manage the SSH certificate authority, its policy and revocations"},
		{PermPlannerRead, "use the capacity planner"},
		{PermPlannerWrite, "refresh live pricing and compute fleet reports"},
		{PermMembersRead, "list the organization's members"},
		{PermMembersAdmin, "invite and remove members, change roles and grants"},
		{PermOrganizationAdmin, "rename the organization"},
		{PermAuditRead, "read the organization's audit log"},
		{PermStateWrite, "read, write and lock the organization's own Terraform states (/v1/terraform/state/custom/{name})"},
	}
}

// ValidPermission reports whether p is in the catalog.
func ValidPermission(p Permission) bool {
	for _, info := range Catalog() {
		if info.Key == p {
			return true
		}
	}
	return false
}

// Role is a member's role in an organization.
type Role string

// Roles, from most to least powerful.
const (
	RoleOwner  Role = "owner"
	RoleAdmin  Role = "admin"
	RoleMember Role = "member"
	RoleViewer Role = "viewer"
)

// Roles lists the roles, most powerful first.
func Roles() []Role { return []Role{RoleOwner, RoleAdmin, RoleMember, RoleViewer} }

// ValidRole reports whether r is a known role.
func ValidRole(r Role) bool { return slices.Contains(Roles(), r) }

// Rank orders roles: a higher rank may manage a lower one.
func (r Role) Rank() int {
	switch r {
	case RoleOwner:
		return 4
	case RoleAdmin:
		return 3
	case RoleMember:
		return 2
	case RoleViewer:
		return 1
	}
	return 0
}

// RolePermissions returns the permissions a role carries.
// Owners and admins hold the whole catalog; owners alone may delete the
// organization and manage other owners (rules enforced by the identity service).
func RolePermissions(r Role) []Permission {
	reads := []Permission{PermNodesRead, PermProvisionRead, PermCredentialsRead, PermDNSRead, PermPlannerRead, PermMembersRead}
	switch r {
	case RoleOwner, RoleAdmin:
		all := make([]Permission, 0, len(Catalog()))
		for _, info := range Catalog() {
			all = append(all, info.Key)
		}
		return all
	case RoleMember:
		return append(reads, PermNodesWrite, PermProvisionWrite, PermDNSWrite, PermSSHSign, PermPlannerWrite, PermStateWrite)
	case RoleViewer:
		return reads
	}
	return nil
}

// PermissionSet is a set of permissions.
type PermissionSet map[Permission]struct{}

// NewPermissionSet builds a set from lists of permissions.
func NewPermissionSet(lists ...[]Permission) PermissionSet {
	s := PermissionSet{}
	for _, l := range lists {
		for _, p := range l {
			s[p] = struct{}{}
		}
	}
	return s
}

// Has reports whether p is in the set.
func (s PermissionSet) Has(p Permission) bool {
	_, ok := s[p]
	return ok
}

// Intersect returns the permissions in both sets.
func (s PermissionSet) Intersect(o PermissionSet) PermissionSet {
	out := PermissionSet{}
	for p := range s {
		if o.Has(p) {
			out[p] = struct{}{}
		}
	}
	return out
}

// Sorted returns the set's permissions in order.
func (s PermissionSet) Sorted() []Permission {
	out := make([]Permission, 0, len(s))
	for p := range s {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// EffectivePermissions is what a member may do: their role's permissions plus their grants.
func EffectivePermissions(role Role, grants []Permission) PermissionSet {
	return NewPermissionSet(RolePermissions(role), grants)
}
