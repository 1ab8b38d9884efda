package credentials

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"github.com/shardform/shardform/domain"
	"github.com/shardform/shardform/store"
)

// ByIDs returns the organization's credentials among ids, each as Get answers
// it (never the secret), in no particular order (the search package's loader).
func (s *Service) ByIDs(ctx context.Context, p *domain.Principal, ids []uuid.UUID) ([]Credential, error) {
	if err := need(p, domain.PermCredentialsRead); err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return []Credential{}, nil
	}
	rows, err := s.q.CredentialsByIDs(ctx, s.st.Pool, store.CredentialsByIDsParams{OrganizationID: p.OrgID, Ids: ids})
	if err != nil {
		return nil, fmt.Errorf("credentials by ids: %w", err)
	}
	out := make([]Credential, len(rows))
	for i, r := range rows {
		out[i] = view(r)
	}
	return out, nil
}
