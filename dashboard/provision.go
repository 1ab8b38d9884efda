package dashboard

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/shardform/shardform/provision"
	"github.com/shardform/shardform/terraform"
)

// listMeta is the meta of a /v1 list answer.
type listMeta struct {
	Page  int   `json:"page"`
	Limit int   `json:"limit"`
	Total int64 `json:"total"`
}

// pager is a list page's position, for the previous/next links.
type pager struct {
	listMeta
	query url.Values
}

func (p pager) Pages() int64 {
	if p.Limit == 0 {
		return 1
	}
	return max(1, (p.Total+int64(p.Limit)-1)/int64(p.Limit))
}
func (p pager) HasPrev() bool { return p.Page > 1 }
func (p pager) HasNext() bool { return int64(p.Page) < p.Pages() }
func (p pager) link(page int) string {
	q := url.Values{}
	for k, v := range p.query {
		q[k] = v
	}
	q.Set("page", strconv.Itoa(page))
	return "?" + q.Encode()
}
func (p pager) PrevLink() string { return p.link(p.Page - 1) }
func (p pager) NextLink() string { return p.link(p.Page + 1) }

const pageSize = "50"

// listQuery is the API query of a list page: its page, and the filters
// named that the page's query carries.
func listQuery(c *fiber.Ctx, filters ...string) url.Values {
	q := url.Values{"limit": {pageSize}}
	if p := c.Query("page"); p != "" {
		q.Set("page", p)
	}
	for _, f := range filters {
		if v := strings.TrimSpace(c.Query(f)); v != "" {
			q.Set(f, v)
		}
	}
	return q
}

func (d *Dashboard) overview(c *fiber.Ctx, s *session, v *view) error {
	v.Title, v.Nav = "Overview", ""
	data := struct{ Requests, Nodes int64 }{}
	if v.Can("provision:read") {
		var reqs, nodes struct {
			Meta listMeta `json:"meta"`
		}
		err := d.do(c, s, call{method: "GET", path: "/v1/provision", query: url.Values{"limit": {"1"}}, out: &reqs})
		if err == nil {
			err = d.do(c, s, call{method: "GET", path: "/v1/nodes", query: url.Values{"limit": {"1"}}, out: &nodes})
		}
		var aerr *APIError
		if err != nil && (!errors.As(err, &aerr) || aerr.Status != http.StatusNotFound) { // 404: no provisioning on this server
			return err
		}
		data.Requests, data.Nodes = reqs.Meta.Total, nodes.Meta.Total
	}
	v.Data = data
	return d.render(c, "overview", v)
}

var provisionStatuses = []string{"pending", "planning", "planned", "applying", "applied", "destroying", "destroyed", "failed"}

type provisionListData struct {
	Requests []provision.Request
	Pager    pager
	Status   string
	Provider string
	Name     string
	Statuses []string
}

func (d *Dashboard) provisionList(c *fiber.Ctx, s *session, v *view) error {
	v.Title, v.Nav = "Provisioning", "provision"
	q := listQuery(c, "status", "provider", "name")
	var out struct {
		Data []provision.Request `json:"data"`
		Meta listMeta            `json:"meta"`
	}
	// The API's search (POST /v1/provision/search): exact filters, the
	// name as a substring, newest first.
	if err := d.do(c, s, call{method: "POST", path: "/v1/provision/search", out: &out,
		body: searchBody(q, map[string]string{"status": "status", "provider": "provider"}, map[string]string{"name": "name"})}); err != nil {
		return err
	}
	v.Data = &provisionListData{Requests: out.Data, Pager: pager{out.Meta, q}, Status: q.Get("status"),
		Provider: q.Get("provider"), Name: q.Get("name"), Statuses: provisionStatuses}
	return d.render(c, "provision_list", v)
}

type provisionNewData struct {
	Providers []provision.ProviderInfo
	Form      map[string]string
}

func (d *Dashboard) catalog(c *fiber.Ctx, s *session) ([]provision.ProviderInfo, error) {
	var out struct {
		Data []provision.ProviderInfo `json:"data"`
	}
	err := d.do(c, s, call{method: "GET", path: "/v1/provision/providers", out: &out})
	return out.Data, err
}

func (d *Dashboard) provisionNew(c *fiber.Ctx, s *session, v *view) error {
	v.Title, v.Nav = "New provision request", "provision"
	provs, err := d.catalog(c, s)
	if err != nil {
		return err
	}
	v.Data = &provisionNewData{Providers: provs, Form: map[string]string{"provider": c.Query("provider")}}
	return d.render(c, "provision_new", v)
}

// provisionCreate posts the form to POST /v1/provision; a refusal shows
// the form again with the API's message.
func (d *Dashboard) provisionCreate(c *fiber.Ctx, s *session, v *view) error {
	// The type select names provider and type together ("local/small"),
	// so one form serves every provider.
	form := map[string]string{"name": strings.TrimSpace(c.FormValue("name")), "region": c.FormValue("region"),
		"type": c.FormValue("instance_type"), "ssh_key": strings.TrimSpace(c.FormValue("ssh_key"))}
	provider, itype, _ := strings.Cut(form["type"], "/")
	region := strings.TrimPrefix(form["region"], provider+"/")
	if p, _, ok := strings.Cut(form["region"], "/"); ok && p != provider {
		region = form["region"] // answered by the API: the region is not the provider's
	}
	body := provision.CreateRequest{Provider: provider, Region: region, InstanceType: itype, Name: form["name"]}
	if form["ssh_key"] != "" {
		body.SSHKeys = []string{form["ssh_key"]}
	}
	var r provision.Request
	err := d.do(c, s, call{method: "POST", path: "/v1/provision", body: body, out: &r})
	if aerr, ok := formRefusal(err); ok {
		provs, cerr := d.catalog(c, s)
		if cerr != nil {
			return cerr
		}
		v.Title, v.Nav, v.Error = "New provision request", "provision", aerr.Message
		v.Data = &provisionNewData{Providers: provs, Form: form}
		c.Status(aerr.Status)
		return d.render(c, "provision_new", v)
	}
	if err != nil {
		return err
	}
	return redirect(c, "/provision/"+r.ID.String())
}

type provisionShowData struct {
	Request provision.Request
	Runs    []provision.Run
	Plan    *terraform.PlanSummary // the changes of the plan an apply would apply
	Live    *provision.Run         // a run still going: its log is followed
	Log     string                 // the newest run's stored output
	LogRun  *provision.Run
	Confirm bool // the apply confirmation
}

func (d *Dashboard) loadProvision(c *fiber.Ctx, s *session) (*provisionShowData, error) {
	id := c.Params("id")
	data := &provisionShowData{}
	if err := d.do(c, s, call{method: "GET", path: "/v1/provision/" + url.PathEscape(id), out: &data.Request}); err != nil {
		return nil, err
	}
	var runs struct {
		Data []provision.Run `json:"data"`
	}
	if err := d.do(c, s, call{method: "GET", path: "/v1/provision/" + url.PathEscape(id) + "/runs", query: url.Values{"limit": {"20"}}, out: &runs}); err != nil {
		return nil, err
	}
	data.Runs = runs.Data
	for i := range data.Runs {
		r := &data.Runs[i]
		if data.Live == nil && (r.Status == "queued" || r.Status == "running") {
			data.Live = r
		}
		if data.Request.PlanRunID != nil && r.ID == *data.Request.PlanRunID {
			data.Plan = r.Changes
		}
	}
	if data.Plan == nil {
		data.Plan = data.Request.PlanSummary
	}
	if len(data.Runs) > 0 && data.Live == nil {
		data.LogRun = &data.Runs[0]
		var logs struct {
			Data []provision.LogLine `json:"data"`
		}
		if err := d.do(c, s, call{method: "GET", path: "/v1/runs/" + data.LogRun.ID.String() + "/logs", out: &logs}); err != nil {
			return nil, err
		}
		var b strings.Builder
		for _, l := range logs.Data {
			b.WriteString(l.Text)
			if !strings.HasSuffix(l.Text, "\n") {
				b.WriteByte('\n')
			}
		}
		data.Log = b.String()
	}
	return data, nil
}

func (d *Dashboard) provisionShow(c *fiber.Ctx, s *session, v *view) error {
	v.Nav = "provision"
	data, err := d.loadProvision(c, s)
	if err != nil {
		v.Title = "Provision request"
		return err
	}
	v.Title, v.Data = data.Request.Name, data
	return d.render(c, "provision_show", v)
}

// provisionConfirmApply shows the plan's changes with the confirmation.
func (d *Dashboard) provisionConfirmApply(c *fiber.Ctx, s *session, v *view) error {
	v.Nav = "provision"
	data, err := d.loadProvision(c, s)
	if err != nil {
		v.Title = "Provision request"
		return err
	}
	data.Confirm = true
	v.Title, v.Data = "Apply "+data.Request.Name, data
	return d.render(c, "provision_show", v)
}

// provisionAction posts plan, apply, cancel or destroy to the API.
func (d *Dashboard) provisionAction(c *fiber.Ctx, s *session, v *view) error {
	id := url.PathEscape(c.Params("id"))
	var k call
	switch c.Params("action") {
	case "plan", "apply", "cancel", "refresh":
		k = call{method: "POST", path: "/v1/provision/" + id + "/" + c.Params("action")}
	case "destroy":
		k = call{method: "DELETE", path: "/v1/provision/" + id}
	default:
		return &APIError{Status: http.StatusNotFound, Message: "no such action"}
	}
	if err := d.do(c, s, k); err != nil {
		if aerr, ok := formRefusal(err); ok && aerr.Status != http.StatusNotFound {
			d.flash(c, aerr.Message)
			return redirect(c, "/provision/"+id)
		}
		return err
	}
	return redirect(c, "/provision/"+id)
}

// runEvents streams a run's live log to the browser's EventSource: the
// API's own stream (GET /v1/runs/{id}/logs?follow=1) under the session.
func (d *Dashboard) runEvents(c *fiber.Ctx) error {
	s := sessionOf(c)
	if !s.signedIn() {
		return fiber.ErrUnauthorized
	}
	q := url.Values{"follow": {"1"}}
	if last := c.Get("Last-Event-ID"); last != "" {
		if _, err := strconv.ParseInt(last, 10, 64); err == nil {
			q.Set("after", last)
		}
	}
	body, err := d.stream(c, s, call{method: "GET", path: "/v1/runs/" + url.PathEscape(c.Params("id")) + "/logs", query: q})
	if err != nil {
		var aerr *APIError
		if errors.As(err, &aerr) {
			return c.Status(aerr.Status).SendString(aerr.Message)
		}
		if errors.Is(err, errSignedOut) {
			return fiber.ErrUnauthorized
		}
		return err
	}
	c.Set(fiber.HeaderContentType, "text/event-stream")
	c.Set(fiber.HeaderCacheControl, "no-cache")
	c.Set("X-Accel-Buffering", "no")
	c.Context().Response.ImmediateHeaderFlush = true
	c.Context().SetBodyStreamWriter(func(w *bufio.Writer) {
		defer body.Close()
		buf := make([]byte, 32<<10)
		for {
			n, rerr := body.Read(buf)
			if n > 0 {
				if _, err := w.Write(buf[:n]); err != nil {
					return
				}
				if err := w.Flush(); err != nil {
					return // the browser left; closing body ends the API's stream
				}
			}
			if rerr != nil {
				if !errors.Is(rerr, io.EOF) {
					fmt.Fprintf(w, "event: error\ndata: %s\n\n", mustJSON(map[string]any{"error": "the log stream broke: reload the page"}))
					_ = w.Flush()
				}
				return
			}
		}
	})
	return nil
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// searchBody is the body of a /v1/.../search call from a list page's
// query: each of filters (query name → field) an exact filter, each of
// substrings a substring search, and the page.
func searchBody(q url.Values, filters, substrings map[string]string) map[string]any {
	body := map[string]any{"limit": 50}
	if p, err := strconv.Atoi(q.Get("page")); err == nil && p > 0 {
		body["page"] = p
	}
	f, sr := map[string][]string{}, map[string][]string{}
	for param, field := range filters {
		if v := q.Get(param); v != "" {
			f[field] = []string{v}
		}
	}
	for param, field := range substrings {
		if v := q.Get(param); v != "" {
			sr[field] = []string{v}
		}
	}
	if len(f) > 0 {
		body["filters"] = f
	}
	if len(sr) > 0 {
		body["search"] = sr
	}
	return body
}
