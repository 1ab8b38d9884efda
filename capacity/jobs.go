package capacity

import (
	"github.com/google/uuid"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// QueuePlanner is the queue of the planner's background jobs (pricing
// refreshes, fleet reports): its own, so they never wait behind Terraform.
const QueuePlanner = "planner"

// Job kinds.
const (
	KindPricingRefresh = "pricing_refresh"
	KindFleetReport    = "fleet_report"
)

// uniqueWhileActive makes a job unique by its args while one is waiting or
// running: asking again returns the job already under way.
func uniqueWhileActive(maxAttempts int) river.InsertOpts {
	return river.InsertOpts{
		Queue:       QueuePlanner,
		MaxAttempts: maxAttempts,
		UniqueOpts: river.UniqueOpts{ByArgs: true, ByState: []rivertype.JobState{
			rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRunning,
			rivertype.JobStateRetryable, rivertype.JobStateScheduled,
		}},
	}
}

// PricingRefreshArgs reads live prices for one organization. With no
// organization it is the hourly fan-out, which queues one job per
// organization holding a default credential for a live source.
type PricingRefreshArgs struct {
	OrganizationID uuid.UUID `json:"organization_id"`
}

// Kind implements river.JobArgs.
func (PricingRefreshArgs) Kind() string { return KindPricingRefresh }

// InsertOpts implements river.JobArgsWithInsertOpts: a failing API is tried
// three times; a refused credential is not retried (the worker cancels).
func (PricingRefreshArgs) InsertOpts() river.InsertOpts { return uniqueWhileActive(3) }

// FleetReportArgs computes and stores an organization's fleet report.
type FleetReportArgs struct {
	OrganizationID   uuid.UUID `json:"organization_id"`
	Currency         string    `json:"currency"`
	ThresholdPercent int       `json:"threshold_percent"`
}

// Kind implements river.JobArgs.
func (FleetReportArgs) Kind() string { return KindFleetReport }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (FleetReportArgs) InsertOpts() river.InsertOpts { return uniqueWhileActive(3) }
