package identity

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"github.com/shardform/shardform/domain"
	"github.com/shardform/shardform/store"
)

// MembersByUserIDs returns the principal's organization's members among
// userIDs (members:read), as the member list shows them, in no particular
// order: a user of another organization is never among them.
func (s *Service) MembersByUserIDs(ctx context.Context, p *domain.Principal, userIDs []uuid.UUID) ([]Member, error) {
	if !p.HasOrg {
		return nil, domain.Forbidden("you belong to no organization")
	}
	if !p.Can(domain.PermMembersRead) {
		return nil, domain.Forbidden("missing permission %s", domain.PermMembersRead)
	}
	if len(userIDs) == 0 {
		return []Member{}, nil
	}
	rows, err := s.q.MembersByUserIDs(ctx, s.st.Pool, store.MembersByUserIDsParams{OrganizationID: p.OrgID, UserIds: userIDs})
	if err != nil {
		return nil, fmt.Errorf("members by user ids: %w", err)
	}
	out := make([]Member, len(rows))
	for i, m := range rows {
		out[i] = Member{UserID: m.UserID, Email: m.Email, Role: domain.Role(m.Role), Grants: toPermissions(m.Grants), JoinedAt: m.CreatedAt}
	}
	return out, nil
}
