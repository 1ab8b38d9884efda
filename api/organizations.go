package api

import (
	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/shardform/shardform/domain"
	"github.com/shardform/shardform/identity"
)

type permissionsBody struct {
	Data  []domain.PermissionInfo             `json:"data"`
	Roles map[domain.Role][]domain.Permission `json:"roles"`
}

func (s *Server) permissions(c *fiber.Ctx) error {
	roles := map[domain.Role][]domain.Permission{}
	for _, r := range domain.Roles() {
		roles[r] = domain.NewPermissionSet(domain.RolePermissions(r)).Sorted()
	}
	return c.JSON(permissionsBody{Data: domain.Catalog(), Roles: roles})
}

type orgRequest struct {
	Name string `json:"name"`
}

func (s *Server) listOrganizations(c *fiber.Ctx) error {
	pg, err := page(c)
	if err != nil {
		return err
	}
	orgs, total, err := s.cfg.Organizations.ListOrganizations(c.UserContext(), principal(c), pg)
	if err != nil {
		return err
	}
	return list(c, orgs, pg, total)
}

func (s *Server) createOrganization(c *fiber.Ctx) error {
	var req orgRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	org, err := s.cfg.Organizations.CreateOrganization(c.UserContext(), principal(c), req.Name)
	if err != nil {
		return err
	}
	setAudit(c, org.ID.String(), &actor{userID: principal(c).UserID, orgID: org.ID})
	return c.Status(fiber.StatusCreated).JSON(org)
}

func (s *Server) getOrganization(c *fiber.Ctx) error {
	id, err := pathID(c, "id", "organization")
	if err != nil {
		return err
	}
	org, err := s.cfg.Organizations.GetOrganization(c.UserContext(), principal(c), id)
	if err != nil {
		return err
	}
	return c.JSON(org)
}

// orgScoped audits a change under the organization in the path.
func orgScoped(c *fiber.Ctx, orgID uuid.UUID, target string) {
	setAudit(c, target, &actor{userID: principal(c).UserID, orgID: orgID})
}

func (s *Server) updateOrganization(c *fiber.Ctx) error {
	id, err := pathID(c, "id", "organization")
	if err != nil {
		return err
	}
	var req orgRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	org, err := s.cfg.Organizations.UpdateOrganization(c.UserContext(), principal(c), id, req.Name)
	if err != nil {
		return err
	}
	orgScoped(c, id, id.String())
	return c.JSON(org)
}

func (s *Server) deleteOrganization(c *fiber.Ctx) error {
	id, err := pathID(c, "id", "organization")
	if err != nil {
		return err
	}
	if err := s.cfg.Organizations.DeleteOrganization(c.UserContext(), principal(c), id); err != nil {
		return err
	}
	orgScoped(c, id, id.String())
	return c.SendStatus(fiber.StatusNoContent)
}

func (s *Server) listMembers(c *fiber.Ctx) error {
	id, err := pathID(c, "id", "organization")
	if err != nil {
		return err
	}
	pg, err := page(c)
	if err != nil {
		return err
	}
	members, total, err := s.cfg.Organizations.ListMembers(c.UserContext(), principal(c), id, pg)
	if err != nil {
		return err
	}
	return list(c, members, pg, total)
}

func (s *Server) inviteMember(c *fiber.Ctx) error {
	id, err := pathID(c, "id", "organization")
	if err != nil {
		return err
	}
	var req identity.InviteRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	inv, err := s.cfg.Organizations.InviteMember(c.UserContext(), principal(c), id, req)
	if err != nil {
		return err
	}
	orgScoped(c, id, "invite:"+inv.ID.String())
	return c.Status(fiber.StatusCreated).JSON(inv)
}

func (s *Server) listInvites(c *fiber.Ctx) error {
	id, err := pathID(c, "id", "organization")
	if err != nil {
		return err
	}
	pg, err := page(c)
	if err != nil {
		return err
	}
	invites, total, err := s.cfg.Organizations.ListInvites(c.UserContext(), principal(c), id, pg)
	if err != nil {
		return err
	}
	return list(c, invites, pg, total)
}

func (s *Server) deleteInvite(c *fiber.Ctx) error {
	id, err := pathID(c, "id", "organization")
	if err != nil {
		return err
	}
	inviteID, err := pathID(c, "invite_id", "invite")
	if err != nil {
		return err
	}
	if err := s.cfg.Organizations.DeleteInvite(c.UserContext(), principal(c), id, inviteID); err != nil {
		return err
	}
	orgScoped(c, id, "invite:"+inviteID.String())
	return c.SendStatus(fiber.StatusNoContent)
}

func (s *Server) acceptInvite(c *fiber.Ctx) error {
	org, err := s.cfg.Organizations.AcceptInvite(c.UserContext(), principal(c), c.Params("token"))
	if err != nil {
		return err
	}
	orgScoped(c, org.ID, "member:"+principal(c).UserID.String())
	return c.JSON(org)
}

// memberPath reads the organization and member ids of a member route.
func memberPath(c *fiber.Ctx) (orgID, userID uuid.UUID, err error) {
	if orgID, err = pathID(c, "id", "organization"); err != nil {
		return
	}
	userID, err = pathID(c, "user_id", "member")
	return
}

func (s *Server) removeMember(c *fiber.Ctx) error {
	orgID, userID, err := memberPath(c)
	if err != nil {
		return err
	}
	if err := s.cfg.Organizations.RemoveMember(c.UserContext(), principal(c), orgID, userID); err != nil {
		return err
	}
	orgScoped(c, orgID, "member:"+userID.String())
	return c.SendStatus(fiber.StatusNoContent)
}

type roleRequest struct {
	Role domain.Role `json:"role"`
}

func (s *Server) setMemberRole(c *fiber.Ctx) error {
	orgID, userID, err := memberPath(c)
	if err != nil {
		return err
	}
	var req roleRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	m, err := s.cfg.Organizations.SetMemberRole(c.UserContext(), principal(c), orgID, userID, req.Role)
	if err != nil {
		return err
	}
	orgScoped(c, orgID, "member:"+userID.String())
	return c.JSON(m)
}

func (s *Server) getMemberPermissions(c *fiber.Ctx) error {
	orgID, userID, err := memberPath(c)
	if err != nil {
		return err
	}
	mp, err := s.cfg.Organizations.GetMemberPermissions(c.UserContext(), principal(c), orgID, userID)
	if err != nil {
		return err
	}
	return c.JSON(mp)
}

type grantsRequest struct {
	Grants []domain.Permission `json:"grants"`
}

func (s *Server) setMemberPermissions(c *fiber.Ctx) error {
	orgID, userID, err := memberPath(c)
	if err != nil {
		return err
	}
	var req grantsRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	mp, err := s.cfg.Organizations.SetMemberGrants(c.UserContext(), principal(c), orgID, userID, req.Grants)
	if err != nil {
		return err
	}
	orgScoped(c, orgID, "member:"+userID.String())
	return c.JSON(mp)
}

type grantRequest struct {
	Permission domain.Permission `json:"permission"`
}

// addMemberPermission is the reference's POST .../permissions: one grant
// added (PUT replaces the whole set).
func (s *Server) addMemberPermission(c *fiber.Ctx) error {
	orgID, userID, err := memberPath(c)
	if err != nil {
		return err
	}
	var req grantRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	mp, err := s.cfg.Organizations.AddMemberGrant(c.UserContext(), principal(c), orgID, userID, req.Permission)
	if err != nil {
		return err
	}
	orgScoped(c, orgID, "member:"+userID.String())
	return c.JSON(mp)
}

func (s *Server) removeMemberPermission(c *fiber.Ctx) error {
	orgID, userID, err := memberPath(c)
	if err != nil {
		return err
	}
	mp, err := s.cfg.Organizations.RemoveMemberGrant(c.UserContext(), principal(c), orgID, userID, domain.Permission(c.Params("permission")))
	if err != nil {
		return err
	}
	orgScoped(c, orgID, "member:"+userID.String())
	return c.JSON(mp)
}
