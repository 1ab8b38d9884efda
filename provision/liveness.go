package provision

import (
	"github.com/google/uuid"

	"github.com/shardform/shardform/liveness"
)

// A running run proves it is alive by a session-level Postgres advisory
// lock named runLockName(run id), held in its worker process's liveness
// session (package liveness); a rescuer in any worker process
// (RescueRuns) finds a running run whose lock it can take and makes its
// job available again at once, instead of waiting for River's job
// timeout.

// ErrLivenessLost is the cause given to a run's context when its worker
// lost the Postgres session that proves the run alive.
var ErrLivenessLost = liveness.ErrLost

// livenessPing is how often the liveness session is checked.
const livenessPing = liveness.PingEvery

// runLiveness is the liveness session of a worker process's runs.
type runLiveness = liveness.Session

func runLockName(id uuid.UUID) string { return "shardform-run:" + id.String() }
