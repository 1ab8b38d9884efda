// Package audit records who changed what: one row per successful
// state-changing API call, readable by the organization's auditors.
package audit

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/shardform/shardform/domain"
	"github.com/shardform/shardform/store"
)

// Entry is one audit record.
type Entry struct {
	ID             int64         `json:"id"`
	OrganizationID uuid.NullUUID `json:"organization_id"`
	UserID         uuid.NullUUID `json:"user_id"`
	APITokenID     uuid.NullUUID `json:"api_token_id"`
	Action         string        `json:"action"`
	Target         string        `json:"target"`
	Status         int           `json:"status"`
	RequestID      string        `json:"request_id"`
	IP             string        `json:"ip"`
	CreatedAt      time.Time     `json:"created_at"`
}

// Log writes and reads audit entries.
type Log struct {
	st *store.Store
}

// New returns a Log on the store.
func New(st *store.Store) *Log { return &Log{st: st} }

// Nullable turns uuid.Nil into a NULL id.
func Nullable(id uuid.UUID) uuid.NullUUID { return uuid.NullUUID{UUID: id, Valid: id != uuid.Nil} }

// Record writes one entry.
func (l *Log) Record(ctx context.Context, e Entry) error {
	err := l.st.Q.InsertAuditLog(ctx, l.st.Pool, store.InsertAuditLogParams{
		OrganizationID: e.OrganizationID, UserID: e.UserID, ApiTokenID: e.APITokenID,
		Action: e.Action, Target: e.Target, Status: int32(e.Status), RequestID: e.RequestID, Ip: e.IP,
	})
	if err != nil {
		return fmt.Errorf("record audit entry %s: %w", e.Action, err)
	}
	return nil
}

// List returns the principal's organization's entries, newest first (audit:read).
func (l *Log) List(ctx context.Context, p *domain.Principal, page domain.Page) ([]Entry, int64, error) {
	if !p.Can(domain.PermAuditRead) {
		return nil, 0, domain.Forbidden("missing permission %s", domain.PermAuditRead)
	}
	org := uuid.NullUUID{UUID: p.OrgID, Valid: true}
	total, err := l.st.Q.CountAuditLogs(ctx, l.st.Pool, org)
	if err != nil {
		return nil, 0, fmt.Errorf("count audit entries: %w", err)
	}
	rows, err := l.st.Q.ListAuditLogs(ctx, l.st.Pool, store.ListAuditLogsParams{OrganizationID: org, Lim: page.Limit, Off: page.Offset()})
	if err != nil {
		return nil, 0, fmt.Errorf("list audit entries: %w", err)
	}
	out := make([]Entry, len(rows))
	for i, r := range rows {
		out[i] = Entry{ID: r.ID, OrganizationID: r.OrganizationID, UserID: r.UserID, APITokenID: r.ApiTokenID,
			Action: r.Action, Target: r.Target, Status: int(r.Status), RequestID: r.RequestID, IP: r.Ip, CreatedAt: r.CreatedAt}
	}
	return out, total, nil
}

// ByIDs returns the principal's organization's entries among ids, in no
// particular order (audit:read; the search package's loader).
func (l *Log) ByIDs(ctx context.Context, p *domain.Principal, ids []int64) ([]Entry, error) {
	if !p.Can(domain.PermAuditRead) {
		return nil, domain.Forbidden("missing permission %s", domain.PermAuditRead)
	}
	if len(ids) == 0 {
		return []Entry{}, nil
	}
	rows, err := l.st.Q.AuditLogsByIDs(ctx, l.st.Pool, store.AuditLogsByIDsParams{OrganizationID: uuid.NullUUID{UUID: p.OrgID, Valid: true}, Ids: ids})
	if err != nil {
		return nil, fmt.Errorf("audit entries by ids: %w", err)
	}
	out := make([]Entry, len(rows))
	for i, r := range rows {
		out[i] = Entry{ID: r.ID, OrganizationID: r.OrganizationID, UserID: r.UserID, APITokenID: r.ApiTokenID,
			Action: r.Action, Target: r.Target, Status: int(r.Status), RequestID: r.RequestID, IP: r.Ip, CreatedAt: r.CreatedAt}
	}
	return out, nil
}
