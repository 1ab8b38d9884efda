package provision

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/shardform/shardform/domain"
	"github.com/shardform/shardform/store"
)

// LogLine is one stored chunk of Terraform output.
type LogLine struct {
	ID        int64     `json:"id"`
	Operation string    `json:"operation"`
	Text      string    `json:"text"`
	CreatedAt time.Time `json:"created_at"`
}

// Logs returns the output of every run of a request after log id afterID
// (0: from the start), at most 1000 chunks, and whether a run is still going.
func (s *Service) Logs(ctx context.Context, p *domain.Principal, id uuid.UUID, afterID int64) ([]LogLine, bool, error) {
	r, err := s.Get(ctx, p, id)
	if err != nil {
		return nil, false, err
	}
	rows, err := s.q.ListProvisionLogs(ctx, s.st.Pool, store.ListProvisionLogsParams{OrganizationID: p.OrgID, ProvisionID: id, AfterID: afterID})
	if err != nil {
		return nil, false, fmt.Errorf("logs of %s: %w", id, err)
	}
	out := make([]LogLine, len(rows))
	for i, l := range rows {
		out[i] = LogLine{ID: l.ID, Operation: l.Operation, Text: l.Chunk, CreatedAt: l.CreatedAt}
	}
	return out, Running(r.Status), nil
}

// Running reports whether a job is working on a request in this status.
func Running(status string) bool {
	return status == StatusPlanning || status == StatusApplying || status == StatusDestroying
}
