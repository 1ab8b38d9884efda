package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/shardform/shardform/domain"
	"github.com/shardform/shardform/provision"
)

// Provisioning is what the API needs of the provisioning pipeline.
type Provisioning interface {
	Create(ctx context.Context, p *domain.Principal, req provision.CreateRequest, idempotencyKey string) (provision.Request, bool, error)
	Get(ctx context.Context, p *domain.Principal, id uuid.UUID) (provision.Request, error)
	List(ctx context.Context, p *domain.Principal, f provision.Filter, page domain.Page) ([]provision.Request, int64, error)
	Plan(ctx context.Context, p *domain.Principal, id uuid.UUID) (provision.Request, error)
	Apply(ctx context.Context, p *domain.Principal, id uuid.UUID) (provision.Request, error)
	Destroy(ctx context.Context, p *domain.Principal, id uuid.UUID, force bool) (provision.Request, error)
	Cancel(ctx context.Context, p *domain.Principal, id uuid.UUID, force bool) (provision.Request, error)
	Refresh(ctx context.Context, p *domain.Principal, id uuid.UUID) (provision.Request, error)
	ListRuns(ctx context.Context, p *domain.Principal, provisionID uuid.UUID, kind string, page domain.Page) ([]provision.Run, int64, error)
	GetRun(ctx context.Context, p *domain.Principal, id uuid.UUID) (provision.Run, error)
	RunLogs(ctx context.Context, p *domain.Principal, id uuid.UUID, afterID int64) ([]provision.LogLine, bool, error)
	FollowRun(ctx context.Context, p *domain.Principal, id uuid.UUID) (wake <-chan struct{}, stop func(), err error)
	CancelRun(ctx context.Context, p *domain.Principal, id uuid.UUID, force bool) (provision.Run, error)
	PlanJSON(ctx context.Context, p *domain.Principal, id uuid.UUID, wait time.Duration) (json.RawMessage, error)
	Resize(ctx context.Context, p *domain.Principal, nodeID uuid.UUID, req provision.ResizeRequest) (provision.Run, error)
	FirewallRules(ctx context.Context, p *domain.Principal, nodeID uuid.UUID) ([]provision.FirewallRule, error)
	AddFirewallRule(ctx context.Context, p *domain.Principal, nodeID uuid.UUID, in provision.RuleInput) (provision.FirewallChange, error)
	RemoveFirewallRule(ctx context.Context, p *domain.Principal, nodeID, ruleID uuid.UUID, in *provision.RuleInput) (provision.FirewallChange, error)
	Logs(ctx context.Context, p *domain.Principal, id uuid.UUID, afterID int64) ([]provision.LogLine, bool, error)
	FollowLogs(ctx context.Context, p *domain.Principal, id uuid.UUID) (wake <-chan struct{}, stop func(), err error)
	Providers() []provision.ProviderInfo
	ListNodes(ctx context.Context, p *domain.Principal, f provision.Filter, page domain.Page) ([]provision.Node, int64, error)
	GetNode(ctx context.Context, p *domain.Principal, id uuid.UUID) (provision.Node, error)
	UpdateNode(ctx context.Context, p *domain.Principal, id uuid.UUID, u provision.NodeUpdate) (provision.Node, error)
	DeleteNode(ctx context.Context, p *domain.Principal, id uuid.UUID, force bool) error
	Cordon(ctx context.Context, p *domain.Principal, id uuid.UUID) (provision.Node, error)
	Uncordon(ctx context.Context, p *domain.Principal, id uuid.UUID) (provision.Node, error)
}

func (s *Server) provisionRoutes(v1 fiber.Router) {
	auth := s.authenticate
	v1.Get("/provision/providers", auth, s.listProviders)
	v1.Get("/provision", auth, s.listProvisions)
	v1.Post("/provision", auth, s.createProvision)
	v1.Get("/provision/:id", auth, s.getProvision)
	v1.Post("/provision/:id/plan", auth, s.provisionStep(Provisioning.Plan))
	v1.Post("/provision/:id/apply", auth, s.provisionStep(Provisioning.Apply))
	v1.Delete("/provision/:id", auth, s.destroyProvision)
	v1.Post("/provision/:id/cancel", auth, s.cancelProvision)
	v1.Post("/provision/:id/refresh", auth, s.provisionStep(Provisioning.Refresh))
	v1.Get("/provision/:id/logs", auth, s.provisionLogs)
	v1.Get("/provision/:id/runs", auth, s.listRuns)
	v1.Get("/runs/:id", auth, s.getRun)
	v1.Get("/runs/:id/logs", auth, s.runLogs)
	v1.Get("/runs/:id/plan", auth, s.runPlan)
	v1.Post("/runs/:id/cancel", auth, s.cancelRun)
	v1.Get("/nodes", auth, s.listNodes)
	v1.Get("/nodes/:id", auth, s.getNode)
	v1.Put("/nodes/:id", auth, s.updateNode)
	v1.Delete("/nodes/:id", auth, s.deleteNode)
	v1.Post("/nodes/:id/resize", auth, s.resizeNode)
	v1.Get("/nodes/:id/firewall/rules", auth, s.firewallRules)
	v1.Post("/nodes/:id/firewall/rules", auth, s.addFirewallRule)
	v1.Delete("/nodes/:id/firewall/rules", auth, s.removeFirewallRule)
	v1.Delete("/nodes/:id/firewall/rules/:rule_id", auth, s.removeFirewallRule)
	v1.Post("/nodes/:id/cordon", auth, s.nodeSchedulable(Provisioning.Cordon))
	v1.Post("/nodes/:id/uncordon", auth, s.nodeSchedulable(Provisioning.Uncordon))
}

// resizeNode changes a node's instance type: 202 with the plan run it queued.
func (s *Server) resizeNode(c *fiber.Ctx) error {
	id, err := pathID(c, "id", "node")
	if err != nil {
		return err
	}
	var req provision.ResizeRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	run, err := s.cfg.Provisioning.Resize(c.UserContext(), principal(c), id, req)
	if err != nil {
		return err
	}
	setAudit(c, id.String(), nil)
	return c.Status(fiber.StatusAccepted).JSON(run)
}

func (s *Server) firewallRules(c *fiber.Ctx) error {
	id, err := pathID(c, "id", "node")
	if err != nil {
		return err
	}
	rules, err := s.cfg.Provisioning.FirewallRules(c.UserContext(), principal(c), id)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"data": rules})
}

// addFirewallRule: 202 with the rule and the plan run it queued.
func (s *Server) addFirewallRule(c *fiber.Ctx) error {
	id, err := pathID(c, "id", "node")
	if err != nil {
		return err
	}
	var in provision.RuleInput
	if err := decode(c, &in); err != nil {
		return err
	}
	ch, err := s.cfg.Provisioning.AddFirewallRule(c.UserContext(), principal(c), id, in)
	if err != nil {
		return err
	}
	setAudit(c, id.String(), nil)
	return c.Status(fiber.StatusAccepted).JSON(ch)
}

// removeFirewallRule removes the rule named in the path, or the one the
// body describes (as the reference's DELETE .../firewall/rules).
func (s *Server) removeFirewallRule(c *fiber.Ctx) error {
	id, err := pathID(c, "id", "node")
	if err != nil {
		return err
	}
	var ruleID uuid.UUID
	var in *provision.RuleInput
	if c.Params("rule_id") != "" {
		if ruleID, err = pathID(c, "rule_id", "firewall rule"); err != nil {
			return err
		}
	} else {
		in = &provision.RuleInput{}
		if err := decode(c, in); err != nil {
			return err
		}
	}
	ch, err := s.cfg.Provisioning.RemoveFirewallRule(c.UserContext(), principal(c), id, ruleID, in)
	if err != nil {
		return err
	}
	setAudit(c, id.String(), nil)
	return c.Status(fiber.StatusAccepted).JSON(ch)
}

func (s *Server) listProviders(c *fiber.Ctx) error {
	if err := need(principal(c), domain.PermProvisionRead); err != nil {
		return err
	}
	return c.JSON(fiber.Map{"data": s.cfg.Provisioning.Providers()})
}

func (s *Server) createProvision(c *fiber.Ctx) error {
	var req provision.CreateRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	r, created, err := s.cfg.Provisioning.Create(c.UserContext(), principal(c), req, c.Get("Idempotency-Key"))
	if err != nil {
		return err
	}
	status := fiber.StatusOK // an idempotent replay
	if created {
		status = fiber.StatusCreated
		setAudit(c, r.ID.String(), nil)
	}
	return c.Status(status).JSON(r)
}

func (s *Server) getProvision(c *fiber.Ctx) error {
	id, err := pathID(c, "id", "provision request")
	if err != nil {
		return err
	}
	r, err := s.cfg.Provisioning.Get(c.UserContext(), principal(c), id)
	if err != nil {
		return err
	}
	return c.JSON(r)
}

func (s *Server) listProvisions(c *fiber.Ctx) error {
	pg, err := page(c)
	if err != nil {
		return err
	}
	rs, total, err := s.cfg.Provisioning.List(c.UserContext(), principal(c), provision.Filter{Status: c.Query("status"), Provider: c.Query("provider")}, pg)
	if err != nil {
		return err
	}
	return list(c, rs, pg, total)
}

// provisionStep answers 202: the step is queued.
func (s *Server) provisionStep(step func(Provisioning, context.Context, *domain.Principal, uuid.UUID) (provision.Request, error)) fiber.Handler {
	return func(c *fiber.Ctx) error {
		id, err := pathID(c, "id", "provision request")
		if err != nil {
			return err
		}
		r, err := step(s.cfg.Provisioning, c.UserContext(), principal(c), id)
		if err != nil {
			return err
		}
		return c.Status(fiber.StatusAccepted).JSON(r)
	}
}

// provisionLogs returns the stored output, or with follow=1 streams it as
// Server-Sent Events ("log" events, then one "end" event with the final
// status, or an "error" event when the stream cannot go on) until the
// running job ends, the client leaves or the server shuts down. While no
// line arrives, a ": heartbeat" comment every FollowHeartbeat keeps proxies
// from closing the stream and shows whether the client is still there (a
// write to a closed connection fails). New lines wake the stream through
// the provisioning service's one shared LISTEN connection: nothing polls.
func (s *Server) provisionLogs(c *fiber.Ctx) error {
	id, err := pathID(c, "id", "provision request")
	if err != nil {
		return err
	}
	after, err := afterQuery(c)
	if err != nil {
		return err
	}
	p := principal(c)
	prov := s.cfg.Provisioning
	return s.serveLogs(c, logSource{
		id: id, after: after, what: "provision_id",
		read: func(ctx context.Context, after int64) ([]provision.LogLine, bool, error) {
			return prov.Logs(ctx, p, id, after)
		},
		follow: func(ctx context.Context) (<-chan struct{}, func(), error) { return prov.FollowLogs(ctx, p, id) },
		final: func(ctx context.Context) (fiber.Map, error) {
			r, err := prov.Get(ctx, p, id)
			return fiber.Map{"status": r.Status, "error": r.Error}, err
		},
	})
}

// logSource is what a log stream reads: a request's whole output or one run's.
type logSource struct {
	id     uuid.UUID
	after  int64
	what   string // the log attribute naming id
	read   func(ctx context.Context, after int64) ([]provision.LogLine, bool, error)
	follow func(ctx context.Context) (<-chan struct{}, func(), error)
	final  func(ctx context.Context) (fiber.Map, error) // the "end" event's data
}

// serveLogs answers the stored output, or with follow=1 streams it (see provisionLogs).
func (s *Server) serveLogs(c *fiber.Ctx, src logSource) error {
	p := principal(c)
	uctx := c.UserContext()
	follow, err := boolQuery(c, "follow")
	if err != nil {
		return err
	}
	if !follow {
		lines, running, err := src.read(uctx, src.after)
		if err != nil {
			return err
		}
		return c.JSON(fiber.Map{"data": lines, "running": running})
	}
	// Listen before the first read: a run that ends between the two is
	// then a wake-up, not a notification lost before the listening began.
	wake, stop, err := src.follow(uctx)
	if err != nil {
		return err
	}
	lines, running, err := src.read(uctx, src.after)
	if err != nil {
		stop()
		return err
	}
	c.Set(fiber.HeaderContentType, "text/event-stream")
	c.Set(fiber.HeaderCacheControl, "no-cache")
	c.Set("X-Accel-Buffering", "no")
	// The client learns at once that the stream is open, before any line.
	c.Context().Response.ImmediateHeaderFlush = true
	f := &follower{
		src: src, after: src.after, wake: wake, heartbeat: s.cfg.FollowHeartbeat,
		log: s.log.With(slog.String("request_id", requestID(c)), slog.String(src.what, src.id.String()),
			slog.String("organization_id", p.OrgID.String())),
	}
	// The stream outlives this handler (and its fiber.Ctx, which Fiber
	// reuses): it runs on the request's values, cancelled at shutdown.
	ctx, cancel := context.WithCancel(context.WithoutCancel(uctx))
	stopOnShutdown := context.AfterFunc(s.streams, cancel)
	c.Context().SetBodyStreamWriter(func(w *bufio.Writer) {
		defer stop()
		defer stopOnShutdown()
		defer cancel()
		f.stream(ctx, w, lines, running)
	})
	return nil
}

// follower is one live log stream.
type follower struct {
	src       logSource
	after     int64
	wake      <-chan struct{}
	heartbeat time.Duration
	log       *slog.Logger
}

// errClientGone: a write or flush to the client failed.
var errClientGone = errors.New("the client closed the stream")

func (f *follower) stream(ctx context.Context, w *bufio.Writer, lines []provision.LogLine, running bool) {
	ticker := time.NewTicker(f.heartbeat)
	defer ticker.Stop()
	for {
		if err := f.send(w, lines); err != nil {
			f.log.DebugContext(ctx, "log follower left", slog.Any("error", err))
			return
		}
		if !running && len(lines) == 0 {
			f.end(ctx, w)
			return
		}
		if len(lines) < provision.LogsPageSize { // a full page: read on at once
			if err := f.wait(ctx, w, ticker.C); err != nil {
				if ctx.Err() == nil {
					f.log.DebugContext(ctx, "log follower left", slog.Any("error", err))
				}
				return
			}
		}
		var err error
		if lines, running, err = f.src.read(ctx, f.after); err != nil {
			if ctx.Err() != nil {
				return // the server is shutting down
			}
			f.fail(ctx, w, "read the log", err)
			return
		}
	}
}

// send writes lines as "log" events and flushes.
func (f *follower) send(w *bufio.Writer, lines []provision.LogLine) error {
	for _, l := range lines {
		b, err := json.Marshal(l)
		if err != nil {
			return fmt.Errorf("encode log line %d: %w", l.ID, err)
		}
		if _, err := fmt.Fprintf(w, "id: %d\nevent: log\ndata: %s\n\n", l.ID, b); err != nil {
			return fmt.Errorf("%w: %w", errClientGone, err)
		}
		f.after = l.ID
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("%w: %w", errClientGone, err)
	}
	return nil
}

// wait returns when the log may have changed, or after a heartbeat on the
// next tick (the caller reads again then: a notification lost while the
// shared listener reconnected delays the stream by one heartbeat at most,
// never for ever); an error means the client left or ctx ended.
func (f *follower) wait(ctx context.Context, w *bufio.Writer, tick <-chan time.Time) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-f.wake:
		return nil
	case <-tick:
		if _, err := w.WriteString(": heartbeat\n\n"); err != nil {
			return fmt.Errorf("%w: %w", errClientGone, err)
		}
		if err := w.Flush(); err != nil {
			return fmt.Errorf("%w: %w", errClientGone, err)
		}
		return nil
	}
}

// end sends the final "end" event with the request's status.
func (f *follower) end(ctx context.Context, w *bufio.Writer) {
	data, err := f.src.final(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		f.fail(ctx, w, "read the final status", err)
		return
	}
	b, err := json.Marshal(data)
	if err == nil {
		_, err = fmt.Fprintf(w, "event: end\ndata: %s\n\n", b)
	}
	if err == nil {
		err = w.Flush()
	}
	if err != nil {
		f.log.DebugContext(ctx, "log follower left before the end event", slog.Any("error", err))
	}
}

// fail sends an "error" event ({"error", "status"}: what the same failure
// would answer as a request, e.g. 404 when the request was deleted) in
// place of the next event; a server error is logged.
func (f *follower) fail(ctx context.Context, w *bufio.Writer, doing string, cause error) {
	status, message := statusOf(cause)
	if status >= fiber.StatusInternalServerError {
		f.log.ErrorContext(ctx, "live log stream failed: could not "+doing, slog.Any("error", cause))
	}
	b, err := json.Marshal(fiber.Map{"error": message, "status": status})
	if err == nil {
		_, err = fmt.Fprintf(w, "event: error\ndata: %s\n\n", b)
	}
	if err == nil {
		err = w.Flush()
	}
	if err != nil {
		f.log.DebugContext(ctx, "log follower left before the error event", slog.Any("error", err))
	}
}

// cancelProvision cancels the request's current run (?force=true: kill it at once).
func (s *Server) cancelProvision(c *fiber.Ctx) error {
	id, err := pathID(c, "id", "provision request")
	if err != nil {
		return err
	}
	force, err := boolQuery(c, "force")
	if err != nil {
		return err
	}
	r, err := s.cfg.Provisioning.Cancel(c.UserContext(), principal(c), id, force)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusAccepted).JSON(r)
}

func (s *Server) listRuns(c *fiber.Ctx) error {
	id, err := pathID(c, "id", "provision request")
	if err != nil {
		return err
	}
	pg, err := page(c)
	if err != nil {
		return err
	}
	runs, total, err := s.cfg.Provisioning.ListRuns(c.UserContext(), principal(c), id, c.Query("kind"), pg)
	if err != nil {
		return err
	}
	return list(c, runs, pg, total)
}

func (s *Server) getRun(c *fiber.Ctx) error {
	id, err := pathID(c, "id", "run")
	if err != nil {
		return err
	}
	r, err := s.cfg.Provisioning.GetRun(c.UserContext(), principal(c), id)
	if err != nil {
		return err
	}
	return c.JSON(r)
}

// runLogs is provisionLogs for one run; the "end" event carries the run's
// final status, exit code and error.
func (s *Server) runLogs(c *fiber.Ctx) error {
	id, err := pathID(c, "id", "run")
	if err != nil {
		return err
	}
	after, err := afterQuery(c)
	if err != nil {
		return err
	}
	p := principal(c)
	prov := s.cfg.Provisioning
	return s.serveLogs(c, logSource{
		id: id, after: after, what: "run_id",
		read: func(ctx context.Context, after int64) ([]provision.LogLine, bool, error) {
			return prov.RunLogs(ctx, p, id, after)
		},
		follow: func(ctx context.Context) (<-chan struct{}, func(), error) { return prov.FollowRun(ctx, p, id) },
		final: func(ctx context.Context) (fiber.Map, error) {
			r, err := prov.GetRun(ctx, p, id)
			return fiber.Map{"status": r.Status, "error": r.Error, "exit_code": r.ExitCode}, err
		},
	})
}

// planRenderWait is how long GET /v1/runs/{id}/plan waits for a worker to
// render a plan before answering 202.
const planRenderWait = 20 * time.Second

// runPlan answers a plan run's JSON plan with sensitive values masked; 202
// while a worker is still rendering it.
func (s *Server) runPlan(c *fiber.Ctx) error {
	id, err := pathID(c, "id", "run")
	if err != nil {
		return err
	}
	plan, err := s.cfg.Provisioning.PlanJSON(c.UserContext(), principal(c), id, planRenderWait)
	if errors.Is(err, provision.ErrRendering) {
		c.Set(fiber.HeaderRetryAfter, "2")
		return c.Status(fiber.StatusAccepted).JSON(fiber.Map{"status": "rendering", "message": err.Error()})
	}
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return c.Send(plan)
}

func (s *Server) cancelRun(c *fiber.Ctx) error {
	id, err := pathID(c, "id", "run")
	if err != nil {
		return err
	}
	force, err := boolQuery(c, "force")
	if err != nil {
		return err
	}
	r, err := s.cfg.Provisioning.CancelRun(c.UserContext(), principal(c), id, force)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusAccepted).JSON(r)
}

// boolQuery reads an optional boolean query parameter: true, 1, false or 0.
func boolQuery(c *fiber.Ctx, name string) (bool, error) {
	switch c.Query(name) {
	case "", "0", "false":
		return false, nil
	case "1", "true":
		return true, nil
	}
	return false, domain.Invalid(name, "must be true, false, 1 or 0")
}

// afterQuery reads the optional "after" log id.
func afterQuery(c *fiber.Ctx) (int64, error) {
	v := c.Query("after")
	if v == "" {
		return 0, nil
	}
	after, err := strconv.ParseInt(v, 10, 64)
	if err != nil || after < 0 {
		return 0, domain.Invalid("after", "must be a log id (a whole number)")
	}
	return after, nil
}

func (s *Server) listNodes(c *fiber.Ctx) error {
	pg, err := page(c)
	if err != nil {
		return err
	}
	ns, total, err := s.cfg.Provisioning.ListNodes(c.UserContext(), principal(c), provision.Filter{Status: c.Query("status"), Provider: c.Query("provider")}, pg)
	if err != nil {
		return err
	}
	return list(c, ns, pg, total)
}

func (s *Server) getNode(c *fiber.Ctx) error {
	id, err := pathID(c, "id", "node")
	if err != nil {
		return err
	}
	n, err := s.cfg.Provisioning.GetNode(c.UserContext(), principal(c), id)
	if err != nil {
		return err
	}
	return c.JSON(n)
}

func (s *Server) updateNode(c *fiber.Ctx) error {
	id, err := pathID(c, "id", "node")
	if err != nil {
		return err
	}
	var u provision.NodeUpdate
	if err := decode(c, &u); err != nil {
		return err
	}
	n, err := s.cfg.Provisioning.UpdateNode(c.UserContext(), principal(c), id, u)
	if err != nil {
		return err
	}
	return c.JSON(n)
}

func (s *Server) deleteNode(c *fiber.Ctx) error {
	id, err := pathID(c, "id", "node")
	if err != nil {
		return err
	}
	force, err := boolQuery(c, "force")
	if err != nil {
		return err
	}
	if err := s.cfg.Provisioning.DeleteNode(c.UserContext(), principal(c), id, force); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

// destroyProvision queues a destroy (202); ?force=true destroys a node that
// still holds instances.
func (s *Server) destroyProvision(c *fiber.Ctx) error {
	id, err := pathID(c, "id", "provision request")
	if err != nil {
		return err
	}
	force, err := boolQuery(c, "force")
	if err != nil {
		return err
	}
	r, err := s.cfg.Provisioning.Destroy(c.UserContext(), principal(c), id, force)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusAccepted).JSON(r)
}

// nodeSchedulable cordons or uncordons a node.
func (s *Server) nodeSchedulable(set func(Provisioning, context.Context, *domain.Principal, uuid.UUID) (provision.Node, error)) fiber.Handler {
	return func(c *fiber.Ctx) error {
		id, err := pathID(c, "id", "node")
		if err != nil {
			return err
		}
		n, err := set(s.cfg.Provisioning, c.UserContext(), principal(c), id)
		if err != nil {
			return err
		}
		return c.JSON(n)
	}
}
