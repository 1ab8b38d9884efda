package hcloudfake

import (
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/hetznercloud/hcloud-go/v2/hcloud/schema"
)

// Server statuses, as Hetzner names them.
const (
	StatusRunning  = "running"
	StatusOff      = "off"
	StatusStarting = "starting"
	StatusStopping = "stopping"
)

// machines is the fake's servers and their actions.
type machines struct {
	mu      sync.Mutex
	servers map[int64]*machine
	actions map[int64]*action
	calls   map[string]int // action command → how many were asked for
	seq     int64
	failing int // the next server actions that answer 503
	locking int // the next server actions that answer 423 locked
	erring  int // the next server actions that end with status "error"
}

type machine struct {
	id      int64
	name    string
	status  string
	reboots int
	// ignoreShutdown: the OS does not react to ACPI (the shutdown action
	// succeeds, as Hetzner's does once the signal is sent, and the server
	// stays running).
	ignoreShutdown bool
	// offAfterReads: a shutdown reached the OS; the server is off after
	// this many more reads (it stays "running" meanwhile, as a real one
	// shutting down does).
	offAfterReads int
}

// action is one server action: running when created, finished at its
// next read (polling), when its effect on the server happens.
type action struct {
	schema.Action
	done func()
	fail bool // ends with status "error", without its effect
}

// AddServer registers a running server and returns its id (a node's
// server_id).
func (s *Server) AddServer(name string) int64 {
	m := &s.machines
	m.mu.Lock()
	defer m.mu.Unlock()
	m.seq++
	id := 4_000_000 + m.seq
	if m.servers == nil {
		m.servers = map[int64]*machine{}
	}
	m.servers[id] = &machine{id: id, name: name, status: StatusRunning}
	return id
}

// ServerStatus is a server's status ("" for none).
func (s *Server) ServerStatus(id int64) string {
	m := &s.machines
	m.mu.Lock()
	defer m.mu.Unlock()
	if v := m.servers[id]; v != nil {
		return v.status
	}
	return ""
}

// SetServerStatus changes a server's status as someone outside shardform
// would (the console).
func (s *Server) SetServerStatus(id int64, status string) {
	m := &s.machines
	m.mu.Lock()
	defer m.mu.Unlock()
	if v := m.servers[id]; v != nil {
		v.status = status
	}
}

// IgnoreShutdown makes a server ignore graceful shutdowns (ACPI): only a
// power-off stops it.
func (s *Server) IgnoreShutdown(id int64) {
	m := &s.machines
	m.mu.Lock()
	defer m.mu.Unlock()
	if v := m.servers[id]; v != nil {
		v.ignoreShutdown = true
	}
}

// Reboots is how many reboots of the server finished.
func (s *Server) Reboots(id int64) int {
	m := &s.machines
	m.mu.Lock()
	defer m.mu.Unlock()
	if v := m.servers[id]; v != nil {
		return v.reboots
	}
	return 0
}

// FailNextActions makes the next n server actions answer 503
// (service_error), as Hetzner does when it is unwell.
func (s *Server) FailNextActions(n int) {
	m := &s.machines
	m.mu.Lock()
	defer m.mu.Unlock()
	m.failing = n
}

// LockNextActions makes the next n server actions answer 423 (locked), as
// Hetzner does while another action holds the server: temporary, the
// client should try again.
func (s *Server) LockNextActions(n int) {
	m := &s.machines
	m.mu.Lock()
	defer m.mu.Unlock()
	m.locking = n
}

// FailNextActionResults makes the next n server actions start (201) and
// then end with status "error" (action_failed) at their first poll,
// without their effect on the server.
func (s *Server) FailNextActionResults(n int) {
	m := &s.machines
	m.mu.Lock()
	defer m.mu.Unlock()
	m.erring = n
}

// ActionCalls is how many actions of each command (poweron, shutdown,
// poweroff, reboot) were asked for.
func (s *Server) ActionCalls() map[string]int {
	m := &s.machines
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]int, len(m.calls))
	for k, v := range m.calls {
		out[k] = v
	}
	return out
}

func (s *Server) serverRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /servers/{id}", s.getServer)
	mux.HandleFunc("POST /servers/{id}/actions/{command}", s.serverAction)
	mux.HandleFunc("GET /actions", s.listActions)
	mux.HandleFunc("GET /actions/{id}", s.getAction)
}

// server finds a server by its path id; the caller holds m.mu.
func (m *machines) server(w http.ResponseWriter, r *http.Request) *machine {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_input", "invalid server id")
		return nil
	}
	v := m.servers[id]
	if v == nil {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("server with ID %d not found", id))
	}
	return v
}

func (v *machine) schema() schema.Server {
	return schema.Server{ID: v.id, Name: v.name, Status: v.status, Created: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC),
		ServerType: schema.ServerType{ID: 104, Name: "cx23"}, Location: schema.Location{ID: 1, Name: "fsn1"},
		Labels: map[string]string{}, Volumes: []int64{}, LoadBalancers: []int64{}, PrivateNet: []schema.ServerPrivateNet{}}
}

func (s *Server) getServer(w http.ResponseWriter, r *http.Request) {
	m := &s.machines
	m.mu.Lock()
	defer m.mu.Unlock()
	v := m.server(w, r)
	if v == nil {
		return
	}
	if v.offAfterReads > 0 {
		v.offAfterReads--
		if v.offAfterReads == 0 {
			v.status = StatusOff
		}
	}
	writeJSON(w, http.StatusOK, schema.ServerGetResponse{Server: v.schema()})
}

// serverAction starts an action. As on Hetzner, powering on a running
// server or off a stopped one is an action that simply succeeds.
func (s *Server) serverAction(w http.ResponseWriter, r *http.Request) {
	m := &s.machines
	m.mu.Lock()
	defer m.mu.Unlock()
	v := m.server(w, r)
	if v == nil {
		return
	}
	cmd := r.PathValue("command")
	if m.failing > 0 {
		m.failing--
		writeError(w, http.StatusServiceUnavailable, "service_error", "the service is unavailable, try again later")
		return
	}
	if m.locking > 0 {
		m.locking--
		writeError(w, http.StatusLocked, "locked", "server is locked by another action")
		return
	}
	var done func()
	prev := v.status
	switch cmd {
	case "poweron":
		if v.status == StatusOff {
			v.status = StatusStarting
		}
		done = func() { v.status = StatusRunning }
	case "poweroff":
		if v.status != StatusOff {
			v.status = StatusStopping
		}
		done = func() { v.status, v.offAfterReads = StatusOff, 0 }
	case "shutdown":
		done = func() {
			if v.status == StatusRunning && !v.ignoreShutdown {
				v.offAfterReads = 2
			}
		}
	case "reboot":
		if v.status == StatusOff {
			writeError(w, http.StatusConflict, "conflict", "server is off")
			return
		}
		done = func() { v.reboots++ }
	default:
		writeError(w, http.StatusNotFound, "not_found", "no such action: "+cmd)
		return
	}
	if m.calls == nil {
		m.calls = map[string]int{}
	}
	m.calls[cmd]++
	if m.actions == nil {
		m.actions = map[int64]*action{}
	}
	m.seq++
	a := &action{Action: schema.Action{ID: 9_000_000 + m.seq, Status: "running", Command: cmd + "_server", Started: time.Now().UTC(),
		Resources: []schema.ActionResourceReference{{ID: v.id, Type: "server"}}}, done: done}
	if m.erring > 0 {
		// The action fails: the server stays as it was.
		m.erring--
		a.fail, v.status = true, prev
	}
	m.actions[a.ID] = a
	writeJSON(w, http.StatusCreated, schema.ServerActionPoweronResponse{Action: a.Action})
}

// read finishes a running action: its effect happens now. The caller holds m.mu.
func (a *action) read() schema.Action {
	if a.Status == "running" {
		now := time.Now().UTC()
		if a.fail {
			a.Status, a.Progress, a.Finished = "error", 100, &now
			a.Error = &schema.ActionError{Code: "action_failed", Message: a.Command + " failed on the host"}
			return a.Action
		}
		a.Status, a.Progress, a.Finished = "success", 100, &now
		a.done()
	}
	return a.Action
}

func (s *Server) listActions(w http.ResponseWriter, r *http.Request) {
	m := &s.machines
	m.mu.Lock()
	defer m.mu.Unlock()
	resp := struct {
		schema.ActionListResponse
		schema.MetaResponse
	}{}
	resp.Actions = []schema.Action{}
	for _, raw := range r.URL.Query()["id"] {
		id, err := strconv.ParseInt(raw, 10, 64)
		if err != nil {
			writeError(w, http.StatusBadRequest, "invalid_input", "invalid action id")
			return
		}
		if a := m.actions[id]; a != nil {
			resp.Actions = append(resp.Actions, a.read())
		}
	}
	resp.Meta.Pagination = &schema.MetaPagination{Page: 1, PerPage: max(len(resp.Actions), 1), LastPage: 1, TotalEntries: len(resp.Actions)}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) getAction(w http.ResponseWriter, r *http.Request) {
	m := &s.machines
	m.mu.Lock()
	defer m.mu.Unlock()
	id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
	a := m.actions[id]
	if a == nil {
		writeError(w, http.StatusNotFound, "not_found", "action not found")
		return
	}
	writeJSON(w, http.StatusOK, schema.ActionGetResponse{Action: a.read()})
}
