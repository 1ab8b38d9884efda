package sshsign

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"github.com/shardform/shardform/domain"
	"github.com/shardform/shardform/store"
)

// CertificatesByIDs returns the certificates among ids that the principal
// may see (ssh:admin: the organization's; ssh:sign: their own), each as
// GetCertificate answers it, in no particular order (the search package's
// loader).
func (s *Service) CertificatesByIDs(ctx context.Context, p *domain.Principal, ids []uuid.UUID) ([]Certificate, error) {
	admin := p.Can(domain.PermSSHAdmin)
	if !admin {
		if err := need(p, domain.PermSSHSign); err != nil {
			return nil, err
		}
	}
	if len(ids) == 0 {
		return []Certificate{}, nil
	}
	rows, err := s.q.SSHCertificatesByIDs(ctx, s.st.Pool, store.SSHCertificatesByIDsParams{OrganizationID: p.OrgID, Ids: ids})
	if err != nil {
		return nil, fmt.Errorf("certificates by ids: %w", err)
	}
	out := make([]Certificate, 0, len(rows))
	for _, r := range rows {
		if admin || (r.UserID.Valid && r.UserID.UUID == p.UserID) {
			out = append(out, s.certView(store.GetSSHCertificateRow(r)))
		}
	}
	return out, nil
}
