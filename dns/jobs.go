package dns

import (
	"github.com/google/uuid"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// QueueDNS is the queue of DNS work: many small jobs, each a few API calls.
const QueueDNS = "dns"

// Job kinds.
const (
	KindSync      = "dns_sync"
	KindReconcile = "dns_reconcile"
)

// syncAttempts is how often a sync is tried before its record is failed
// (429s snooze without counting).
const syncAttempts = 10

// activeStates are the states in which a job counts as already queued.
var activeStates = []rivertype.JobState{
	rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRunning,
	rivertype.JobStateRetryable, rivertype.JobStateScheduled,
}

// SyncArgs makes Cloudflare hold a record's desired state (or delete it).
// One job per record while one is waiting or running: a change made while
// it runs is picked up by the same job (the record's generation moved).
type SyncArgs struct {
	OrganizationID uuid.UUID `json:"organization_id"`
	RecordID       uuid.UUID `json:"record_id"`
}

// Kind implements river.JobArgs.
func (SyncArgs) Kind() string { return KindSync }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (SyncArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueDNS, MaxAttempts: syncAttempts,
		UniqueOpts: river.UniqueOpts{ByArgs: true, ByState: activeStates}}
}

// ReconcileArgs compares an organization's managed records with Cloudflare
// and repairs drift. Without an organization it is the periodic fan-out:
// one job per organization with synced records.
type ReconcileArgs struct {
	OrganizationID uuid.UUID `json:"organization_id"`
}

// Kind implements river.JobArgs.
func (ReconcileArgs) Kind() string { return KindReconcile }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (ReconcileArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueDNS, MaxAttempts: 3,
		UniqueOpts: river.UniqueOpts{ByArgs: true, ByState: activeStates}}
}
