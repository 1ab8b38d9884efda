// Package worker holds shardform's River job kinds and builds the River
// client: workers (with queues) for `shardform worker` and `serve`, or an
// insert-only client for `shardform api`.
package worker

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"

	"github.com/shardform/shardform/agent"
	"github.com/shardform/shardform/capacity"
	"github.com/shardform/shardform/dns"
	"github.com/shardform/shardform/nodeops"
	"github.com/shardform/shardform/placement"
	"github.com/shardform/shardform/provision"
	"github.com/shardform/shardform/sshsign"
	"github.com/shardform/shardform/store"
)

// Queue names: one queue per kind of work (the others are named by the
// domain packages whose jobs they run: provision.QueueTerraform,
// sshsign.QueueSSH, capacity.QueuePlanner, nodeops.QueueNodes).
const (
	QueueMaintenance = "maintenance"
)

// sshFetchCooldown is the ssh queue's shortest pause between fetches.
// Each fetch is a commit, so at hundreds of signing requests per second
// 5 ms batches several jobs per fetch while adding only a few milliseconds
// of pickup latency.
const sshFetchCooldown = 5 * time.Millisecond

// insertNotifyCooldown is the client's FetchCooldown, which River uses only
// to throttle this client's insert notifications: at most one per queue in
// that time (a NOTIFY holds Postgres' global notification lock through its
// commit). An insert that finds a notification sent less than this ago
// sends none, and its job waits for a fetch that was coming anyway (the
// first job's, a trailing one of the queue's cooldown, or the poll), so it
// must stay short: with River's default of 100 ms, two applies posted
// 100 ms apart could leave the second waiting up to a poll interval.
const insertNotifyCooldown = 5 * time.Millisecond

// terraformFetchCooldown is the terraform queue's shortest pause between
// two fetches. River debounces fetches: a notification that arrives within
// the cooldown of the last fetch waits for its end (and that fetch re-arms
// the cooldown), so the cooldown is how long a free worker may wait for a
// job inserted right after another fetch. It must stay under the issue's
// 10 ms pickup target. The queue's jobs are few and run for seconds, so a
// fetch every few milliseconds at most costs nothing; with 100 ms, the
// queue-pickup benchmark (one apply every ~106 ms) saw every notification
// land in the cooldown re-armed by the one before: median 27 ms, p99 99 ms.
const terraformFetchCooldown = 5 * time.Millisecond

// slowFetchCooldown is the pause between fetches of the queues whose jobs
// take seconds or nobody waits for (maintenance, planner, nodes, dns): a
// job there may wait up to this long for a free worker to fetch it.
const slowFetchCooldown = 100 * time.Millisecond

// nodesFetchCooldown is the nodes queue's shortest pause between fetches
// (and, at most, the client's between insert notifications).
const nodesFetchCooldown = 10 * time.Millisecond

// sshPollInterval is how often the ssh queue polls besides LISTEN/NOTIFY:
// the client's interval, at most 50 ms.
func sshPollInterval(client time.Duration) time.Duration {
	if client <= 0 || client > 50*time.Millisecond {
		return 50 * time.Millisecond
	}
	return max(client, sshFetchCooldown)
}

// cooldown is want, or the poll interval when that is shorter (River
// refuses a cooldown longer than the poll interval).
func cooldown(pollInterval, want time.Duration) time.Duration {
	if pollInterval > 0 {
		return min(pollInterval, want)
	}
	return want
}

// Options configures the River client.
type Options struct {
	// Work makes the client fetch and run jobs; without it the client only inserts.
	Work   bool
	Logger *slog.Logger
	// CleanupInterval is how often expired sessions, challenges, invites and
	// rate-limit windows are deleted. Default 10 minutes.
	CleanupInterval time.Duration
	// Provision runs the provisioning jobs; nil registers none.
	Provision *provision.Service
	// TerraformWorkers is the terraform queue's concurrency (default 2).
	TerraformWorkers int
	// TerraformTimeout bounds one Terraform run (default 1 hour). A job whose
	// worker process died is retried a quarter of that (at least 10 s) after
	// the timeout: never while a healthy worker may still be running it.
	TerraformTimeout time.Duration
	// SSH runs the ssh_sign jobs (the SSH certificate authority); nil
	// registers none.
	SSH *sshsign.Service
	// SSHWorkers is the ssh queue's concurrency (default 10).
	SSHWorkers int
	// FetchPollInterval is how often a worker polls for jobs besides
	// LISTEN/NOTIFY (River's default is 1 s; lower means faster pickup).
	FetchPollInterval time.Duration
	// Planner runs the pricing_refresh and fleet_report jobs on the
	// planner queue; nil registers none.
	Planner *capacity.Service
	// PlannerWorkers is the planner queue's concurrency (default 2).
	PlannerWorkers int
	// PricingRefreshInterval is how often every organization's live
	// pricing is refreshed (default 1 hour; also once at start).
	PricingRefreshInterval time.Duration
	// DriftInterval is how often every applied request is checked for
	// drift (a refresh run each); 0 turns the periodic check off.
	DriftInterval time.Duration
	// DNS runs the dns_sync and dns_reconcile jobs on the dns queue; nil
	// registers none.
	DNS *dns.Service
	// DNSWorkers is the dns queue's concurrency (default 4).
	DNSWorkers int
	// DNSReconcileInterval is how often every organization's managed DNS
	// records are compared with Cloudflare (default 10 minutes; negative: never).
	DNSReconcileInterval time.Duration
	// NodeOps runs the node_action jobs (power actions) on the nodes
	// queue; nil registers none.
	NodeOps *nodeops.Service
	// NodeWorkers is the nodes queue's concurrency (default 10: the jobs
	// mostly wait for the cloud).
	NodeWorkers int
	// Placement runs the node_drain jobs on the placement queue; nil
	// registers none.
	Placement *placement.Service
	// PlacementWorkers is the placement queue's concurrency (default 4).
	PlacementWorkers int
	// Agents runs the periodic sweep that marks nodes whose agents went
	// silent unreachable; nil registers none.
	Agents *agent.Service
	// UnreachableSweepInterval is how often it runs (default one minute).
	UnreachableSweepInterval time.Duration
}

// NewClient builds the River client with every worker registered.
func NewClient(pool *pgxpool.Pool, st *store.Store, opts Options) (*river.Client[pgx.Tx], error) {
	if opts.CleanupInterval == 0 {
		opts.CleanupInterval = 10 * time.Minute
	}
	if opts.TerraformWorkers == 0 {
		opts.TerraformWorkers = 2
	}
	if opts.TerraformTimeout == 0 {
		opts.TerraformTimeout = time.Hour
	}
	if opts.SSH != nil && opts.SSHWorkers == 0 {
		opts.SSHWorkers = 10
	}
	if opts.PlannerWorkers == 0 {
		opts.PlannerWorkers = 2
	}
	if opts.PricingRefreshInterval == 0 {
		opts.PricingRefreshInterval = time.Hour
	}
	if opts.DNSWorkers == 0 {
		opts.DNSWorkers = 4
	}
	if opts.DNSReconcileInterval == 0 {
		opts.DNSReconcileInterval = 10 * time.Minute
	}
	if opts.PlacementWorkers == 0 {
		opts.PlacementWorkers = 4
	}
	workers := river.NewWorkers()
	river.AddWorker(workers, &CleanupWorker{st: st})
	if opts.Provision != nil {
		river.AddWorker(workers, &PlanWorker{svc: opts.Provision, timeout: opts.TerraformTimeout})
		river.AddWorker(workers, &ApplyWorker{svc: opts.Provision, timeout: opts.TerraformTimeout})
		river.AddWorker(workers, &DestroyWorker{svc: opts.Provision, timeout: opts.TerraformTimeout})
		river.AddWorker(workers, &RefreshWorker{svc: opts.Provision, timeout: opts.TerraformTimeout})
		river.AddWorker(workers, &RenderPlanWorker{svc: opts.Provision})
		river.AddWorker(workers, &DriftSweepWorker{svc: opts.Provision})
	}
	if opts.SSH != nil {
		river.AddWorker(workers, &SignWorker{svc: opts.SSH})
		river.AddWorker(workers, &HostSignWorker{svc: opts.SSH})
	}
	if opts.NodeOps != nil {
		river.AddWorker(workers, &NodeActionWorker{svc: opts.NodeOps})
		river.AddWorker(workers, &NodeAddressesWorker{svc: opts.NodeOps})
		if opts.NodeWorkers == 0 {
			opts.NodeWorkers = 10
		}
	}
	if opts.Agents != nil {
		river.AddWorker(workers, &UnreachableSweepWorker{svc: opts.Agents})
		if opts.UnreachableSweepInterval == 0 {
			opts.UnreachableSweepInterval = time.Minute
		}
	}
	if opts.Planner != nil {
		river.AddWorker(workers, &PricingRefreshWorker{svc: opts.Planner})
		river.AddWorker(workers, &FleetReportWorker{svc: opts.Planner})
	}
	if opts.DNS != nil {
		river.AddWorker(workers, &DNSSyncWorker{svc: opts.DNS})
		river.AddWorker(workers, &DNSReconcileWorker{svc: opts.DNS})
	}
	if opts.Placement != nil {
		river.AddWorker(workers, &DrainWorker{svc: opts.Placement})
	}
	cfg := &river.Config{
		Logger:               opts.Logger,
		Workers:              workers,
		FetchPollInterval:    opts.FetchPollInterval,
		FetchCooldown:        cooldown(opts.FetchPollInterval, insertNotifyCooldown),
		JobTimeout:           opts.TerraformTimeout,
		RescueStuckJobsAfter: opts.TerraformTimeout + max(opts.TerraformTimeout/4, 10*time.Second),
	}
	slowCooldown := cooldown(opts.FetchPollInterval, slowFetchCooldown)
	if opts.Work {
		cfg.Queues = map[string]river.QueueConfig{
			QueueMaintenance: {MaxWorkers: 1, FetchCooldown: slowCooldown},
		}
		if opts.Provision != nil {
			cfg.Queues[provision.QueueTerraform] = river.QueueConfig{MaxWorkers: opts.TerraformWorkers, FetchCooldown: cooldown(opts.FetchPollInterval, terraformFetchCooldown)}
		}
		if opts.SSH != nil {
			cfg.Queues[sshsign.QueueSSH] = river.QueueConfig{MaxWorkers: opts.SSHWorkers, FetchCooldown: sshFetchCooldown,
				FetchPollInterval: sshPollInterval(opts.FetchPollInterval)}
		}
		cfg.PeriodicJobs = []*river.PeriodicJob{
			river.NewPeriodicJob(river.PeriodicInterval(opts.CleanupInterval),
				func() (river.JobArgs, *river.InsertOpts) { return CleanupArgs{}, nil },
				&river.PeriodicJobOpts{RunOnStart: true}),
		}
		if opts.NodeOps != nil {
			cfg.Queues[nodeops.QueueNodes] = river.QueueConfig{MaxWorkers: opts.NodeWorkers, FetchCooldown: nodesFetchCooldown}
		}
		if opts.Placement != nil {
			// Drains react at once: a drain is waited for by whoever asked.
			cfg.Queues[placement.QueuePlacement] = river.QueueConfig{MaxWorkers: opts.PlacementWorkers, FetchCooldown: sshFetchCooldown,
				FetchPollInterval: sshPollInterval(opts.FetchPollInterval)}
		}
		if opts.Provision != nil && opts.DriftInterval > 0 {
			cfg.PeriodicJobs = append(cfg.PeriodicJobs, river.NewPeriodicJob(river.PeriodicInterval(opts.DriftInterval),
				func() (river.JobArgs, *river.InsertOpts) { return provision.DriftSweepArgs{}, nil }, nil))
		}
		if opts.Agents != nil {
			cfg.PeriodicJobs = append(cfg.PeriodicJobs, river.NewPeriodicJob(river.PeriodicInterval(opts.UnreachableSweepInterval),
				func() (river.JobArgs, *river.InsertOpts) { return agent.UnreachableSweepArgs{}, nil }, nil))
		}
		if opts.Planner != nil {
			cfg.Queues[capacity.QueuePlanner] = river.QueueConfig{MaxWorkers: opts.PlannerWorkers, FetchCooldown: slowCooldown}
			// The fan-out: one pricing_refresh per organization with a
			// default credential of a live source.
			cfg.PeriodicJobs = append(cfg.PeriodicJobs, river.NewPeriodicJob(river.PeriodicInterval(opts.PricingRefreshInterval),
				func() (river.JobArgs, *river.InsertOpts) { return capacity.PricingRefreshArgs{}, nil },
				&river.PeriodicJobOpts{RunOnStart: true}))
		}
		if opts.DNS != nil {
			cfg.Queues[dns.QueueDNS] = river.QueueConfig{MaxWorkers: opts.DNSWorkers, FetchCooldown: slowCooldown}
			if opts.DNSReconcileInterval > 0 {
				cfg.PeriodicJobs = append(cfg.PeriodicJobs, river.NewPeriodicJob(river.PeriodicInterval(opts.DNSReconcileInterval),
					func() (river.JobArgs, *river.InsertOpts) { return dns.ReconcileArgs{}, nil }, nil))
			}
		}
	}
	client, err := river.NewClient(riverpgxv5.New(pool), cfg)
	if err != nil {
		return nil, fmt.Errorf("river client: %w", err)
	}
	return client, nil
}

// CleanupArgs is the periodic maintenance job: it deletes expired refresh
// tokens, MFA challenges, invites and rate-limit windows, and the records
// of drains, migrations and power actions finished more than
// HistoryDays ago (a node's latest power action is kept); plan runs
// finished more than provision.PlanFileDays ago lose their saved plans.
type CleanupArgs struct{}

// Kind implements river.JobArgs.
func (CleanupArgs) Kind() string { return "cleanup" }

// InsertOpts puts the job on the maintenance queue, one at a time.
func (CleanupArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueMaintenance, UniqueOpts: river.UniqueOpts{ByState: []rivertype.JobState{
		rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRunning, rivertype.JobStateRetryable, rivertype.JobStateScheduled,
	}}}
}

// HistoryDays is how long finished drains, migrations and power actions
// stay listed.
const HistoryDays = 90

// CleanupWorker runs CleanupArgs.
type CleanupWorker struct {
	river.WorkerDefaults[CleanupArgs]
	st *store.Store
}

// Work deletes what has expired and records the counts in the job's output.
func (w *CleanupWorker) Work(ctx context.Context, job *river.Job[CleanupArgs]) error {
	q, db := w.st.Q, w.st.Pool
	counts := map[string]int64{}
	steps := []struct {
		name string
		run  func(context.Context, store.DBTX) (int64, error)
	}{
		{"refresh_tokens", q.DeleteExpiredRefreshTokens},
		{"mfa_challenges", q.DeleteExpiredMFAChallenges},
		{"invites", q.DeleteExpiredInvites},
		{"rate_limit_windows", q.DeleteExpiredRateLimits},
		{"migrations", func(ctx context.Context, db store.DBTX) (int64, error) {
			return q.DeleteOldMigrations(ctx, db, HistoryDays)
		}},
		{"node_actions", func(ctx context.Context, db store.DBTX) (int64, error) {
			return q.DeleteOldNodeActions(ctx, db, HistoryDays)
		}},
		{"plan_files", func(ctx context.Context, db store.DBTX) (int64, error) {
			return q.ClearOldPlanFiles(ctx, db, provision.PlanFileDays)
		}},
	}
	for _, s := range steps {
		n, err := s.run(ctx, db)
		if err != nil {
			return fmt.Errorf("cleanup %s: %w", s.name, err)
		}
		counts[s.name] = n
	}
	return river.RecordOutput(ctx, counts)
}
