-- name: CreateOrganization :one
INSERT INTO organizations (name) VALUES (@name) RETURNING *;

-- name: GetOrganization :one
-- Only a member sees an organization.
SELECT o.*, m.role
FROM organizations o
JOIN memberships m ON m.organization_id = o.id AND m.user_id = @user_id
WHERE o.id = @id;

-- name: ListOrganizationsForUser :many
SELECT o.*, m.role
FROM organizations o
JOIN memberships m ON m.organization_id = o.id
WHERE m.user_id = @user_id
ORDER BY m.created_at, o.id
LIMIT @lim OFFSET @off;

-- name: CountOrganizationsForUser :one
SELECT count(*) FROM memberships WHERE user_id = @user_id;

-- name: UpdateOrganization :one
UPDATE organizations SET name = @name, updated_at = now()
WHERE id = @id
RETURNING *;

-- name: DeleteOrganization :execrows
DELETE FROM organizations WHERE id = @id;

-- name: AddMembership :one
INSERT INTO memberships (organization_id, user_id, role, grants)
VALUES (@organization_id, @user_id, @role, @grants)
RETURNING *;

-- name: GetMembership :one
SELECT m.*, u.email
FROM memberships m JOIN users u ON u.id = m.user_id
WHERE m.organization_id = @organization_id AND m.user_id = @user_id;

-- name: ListMembers :many
SELECT m.*, u.email
FROM memberships m JOIN users u ON u.id = m.user_id
WHERE m.organization_id = @organization_id
ORDER BY m.created_at, m.user_id
LIMIT @lim OFFSET @off;

-- name: CountMembers :one
SELECT count(*) FROM memberships WHERE organization_id = @organization_id;

-- name: LockOrganization :exec
-- Serializes changes that must keep at least one owner (two owners stepping
-- down at once would otherwise both see the other one still there).
SELECT id FROM organizations WHERE id = @id FOR NO KEY UPDATE;

-- name: CountOwners :one
SELECT count(*) FROM memberships WHERE organization_id = @organization_id AND role = 'owner';

-- name: UpdateMemberRole :exec
UPDATE memberships SET role = @role
WHERE organization_id = @organization_id AND user_id = @user_id;

-- name: SetMemberGrants :exec
UPDATE memberships SET grants = @grants
WHERE organization_id = @organization_id AND user_id = @user_id;

-- name: DeleteMembership :execrows
DELETE FROM memberships WHERE organization_id = @organization_id AND user_id = @user_id;

-- name: CreateInvite :one
INSERT INTO invites (organization_id, email, role, token_hash, invited_by, expires_at)
VALUES (@organization_id, @email, @role, @token_hash, @invited_by, @expires_at)
RETURNING *;

-- name: ListInvites :many
SELECT * FROM invites
WHERE organization_id = @organization_id AND expires_at > now()
ORDER BY created_at, id
LIMIT @lim OFFSET @off;

-- name: CountInvites :one
SELECT count(*) FROM invites WHERE organization_id = @organization_id AND expires_at > now();

-- name: DeleteInvite :execrows
DELETE FROM invites WHERE organization_id = @organization_id AND id = @id;

-- name: TakeInvite :one
-- Deletes and returns a live invite: an invite is accepted once.
DELETE FROM invites WHERE token_hash = @token_hash AND expires_at > now()
RETURNING *;

-- name: DeleteExpiredInvites :execrows
DELETE FROM invites WHERE expires_at <= now();

-- name: ListSoleOwnedOrganizations :many
-- Organizations whose only owner is the user, with their member count.
SELECT m.organization_id AS id,
       (SELECT count(*) FROM memberships a WHERE a.organization_id = m.organization_id) AS members
FROM memberships m
WHERE m.user_id = @user_id AND m.role = 'owner'
  AND NOT EXISTS (
      SELECT 1 FROM memberships o
      WHERE o.organization_id = m.organization_id AND o.role = 'owner' AND o.user_id <> m.user_id
  );

-- name: MembersByUserIDs :many
-- The organization's members among the users (search's user extend).
SELECT m.*, u.email
FROM memberships m JOIN users u ON u.id = m.user_id
WHERE m.organization_id = @organization_id AND m.user_id = ANY(@user_ids::uuid[]);
