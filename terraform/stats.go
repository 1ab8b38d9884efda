package terraform

import (
	"maps"
	"os"
	"sync"
	"time"
)

// CommandStats is what the Terraform processes of one command (plan,
// apply, init, ...) have cost, summed since the runner was made. CPU times
// come from the kernel's accounting of each exited process (its
// ProcessState), with the providers it ran and waited for.
type CommandStats struct {
	Processes int // exited
	Running   int // started and not yet exited
	User      time.Duration
	System    time.Duration
	Wall      time.Duration // from start to exit
}

// CPU is user plus system time.
func (s CommandStats) CPU() time.Duration { return s.User + s.System }

// processStats sums CommandStats by command; safe for concurrent use.
type processStats struct {
	mu sync.Mutex
	m  map[string]CommandStats
}

// started counts a process that has started; exited, called once for
// it, counts it out again.
func (p *processStats) started(command string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = map[string]CommandStats{}
	}
	s := p.m[command]
	s.Running++
	p.m[command] = s
}

// exited adds a process counted by started that has exited (or failed
// to be waited for: state nil) to the sums.
func (p *processStats) exited(command string, state *os.ProcessState, wall time.Duration) {
	p.mu.Lock()
	s := p.m[command]
	s.Running--
	p.m[command] = s
	p.mu.Unlock()
	p.record(command, state, wall)
}

// record adds one exited process (a nil state, from a process that never
// started, is not counted).
func (p *processStats) record(command string, state *os.ProcessState, wall time.Duration) {
	if state == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = map[string]CommandStats{}
	}
	s := p.m[command]
	s.Processes++
	s.User += state.UserTime()
	s.System += state.SystemTime()
	s.Wall += wall
	p.m[command] = s
}

func (p *processStats) snapshot() map[string]CommandStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return maps.Clone(p.m)
}

// Stats returns, by command (the first argument: "plan", "apply", "init",
// "version", ...), the Terraform processes this runner has run and what
// they cost. The map is a copy.
func (r *Runner) Stats() map[string]CommandStats {
	out := r.stats.snapshot()
	if out == nil {
		out = map[string]CommandStats{}
	}
	return out
}
