package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/shardform/shardform/provision"
)

// provisionRequest is a provision request as the API answers it.
type provisionRequest struct {
	ID           string            `json:"id"`
	Provider     string            `json:"provider"`
	Region       string            `json:"region"`
	InstanceType string            `json:"instance_type"`
	Name         string            `json:"name"`
	Labels       map[string]string `json:"labels"`
	Status       string            `json:"status"`
	Error        string            `json:"error"`
	PlanSummary  *planSummary      `json:"plan_summary"`
	NodeID       *string           `json:"node_id"`
	PlanRunID    *string           `json:"plan_run_id"`
	CreatedAt    time.Time         `json:"created_at"`
	UpdatedAt    time.Time         `json:"updated_at"`
	Run          *tfRun            `json:"run"`
}

// tfRun is a Terraform run (GET /v1/runs/{id}).
type tfRun struct {
	ID         string       `json:"id"`
	Kind       string       `json:"kind"`
	Status     string       `json:"status"`
	Error      string       `json:"error"`
	ExitCode   *int         `json:"exit_code"`
	Changes    *planSummary `json:"changes"`
	QueuedAt   time.Time    `json:"queued_at"`
	FinishedAt *time.Time   `json:"finished_at"`
}

type planSummary struct {
	Add       int `json:"add"`
	Change    int `json:"change"`
	Destroy   int `json:"destroy"`
	Resources []struct {
		Address string `json:"address"`
		Action  string `json:"action"`
	} `json:"resources"`
}

func (c *cli) provisionCmd() *cobra.Command {
	p := group("provision", "Provision requests: create, plan, apply, destroy, and their runs.", "command")
	p.AddCommand(c.provisionCreateCmd(), c.provisionPlanCmd(), c.provisionApplyCmd(), c.provisionDestroyCmd(),
		c.provisionListCmd(), c.provisionShowCmd(), c.provisionLogsCmd(), c.provisionCancelCmd())
	return p
}

// createFlags are provision create's and up's flags.
type createFlags struct {
	provider, region, typ, name, sshKey string
	labels                              stringList
}

func (f *createFlags) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.provider, "provider", "", "the provider (GET /v1/provision/providers: local, hetzner, aws)")
	fl.StringVar(&f.region, "region", "", "the provider's region")
	fl.StringVar(&f.typ, "type", "", "the instance type")
	fl.StringVar(&f.name, "name", "", "the node's name (a DNS label)")
	fl.Var(&f.labels, "label", "a label k=v (repeatable)")
	fl.StringVar(&f.sshKey, "ssh-key", "", "a public key file to install for root")
}

// body is the POST /v1/provision body.
func (f *createFlags) body(cmd *cobra.Command) (map[string]any, error) {
	for _, r := range []struct{ flag, v string }{{"provider", f.provider}, {"region", f.region}, {"type", f.typ}, {"name", f.name}} {
		if r.v == "" {
			return nil, usageErr(cmd, "%s: --%s is required", cmd.CommandPath(), r.flag)
		}
	}
	body := map[string]any{"provider": f.provider, "region": f.region, "instance_type": f.typ, "name": f.name}
	if len(f.labels) > 0 {
		lbl := map[string]string{}
		for _, l := range f.labels {
			k, v, ok := strings.Cut(l, "=")
			if !ok || k == "" {
				return nil, usageErr(cmd, "%s: --label: %q is not k=v", cmd.CommandPath(), l)
			}
			lbl[k] = v
		}
		body["labels"] = lbl
	}
	if f.sshKey != "" {
		raw, err := os.ReadFile(f.sshKey)
		if err != nil {
			return nil, fmt.Errorf("read --ssh-key: %w", err)
		}
		body["ssh_keys"] = []string{strings.TrimSpace(string(raw))}
	}
	return body, nil
}

func (c *cli) provisionCreateCmd() *cobra.Command {
	var f createFlags
	cmd := &cobra.Command{
		Use:   "create --provider P --region R --type T --name N [--label k=v]... [--ssh-key FILE]",
		Short: "Creates a provision request (then: plan, apply).",
		Args:  noArgs,
	}
	f.add(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		body, err := f.body(cmd)
		if err != nil {
			return err
		}
		api, err := c.authed()
		if err != nil {
			return err
		}
		var r provisionRequest
		raw, err := api.call(cmd.Context(), http.MethodPost, "/v1/provision", body, &r)
		if err != nil {
			return err
		}
		return c.showRequest(raw, r)
	}
	return cmd
}

// showRequest prints one request: its JSON, its id, or its fields.
func (c *cli) showRequest(raw []byte, r provisionRequest) error {
	switch {
	case c.jsonOut():
		return c.writeJSON(raw)
	case c.quiet:
		return c.ids([]string{r.ID})
	}
	kv := [][2]string{
		{"id", r.ID}, {"name", r.Name}, {"provider", r.Provider}, {"region", r.Region}, {"type", r.InstanceType},
		{"status", c.status(r.Status)}, {"labels", labelList(r.Labels)},
	}
	if r.Error != "" {
		kv = append(kv, [2]string{"error", r.Error})
	}
	if r.PlanSummary != nil {
		kv = append(kv, [2]string{"plan", fmt.Sprintf("%d to add, %d to change, %d to destroy", r.PlanSummary.Add, r.PlanSummary.Change, r.PlanSummary.Destroy)})
	}
	if r.NodeID != nil {
		kv = append(kv, [2]string{"node", *r.NodeID})
	}
	if r.Run != nil {
		kv = append(kv, [2]string{"run", r.Run.ID + " (" + r.Run.Kind + ", " + r.Run.Status + ")"})
	}
	kv = append(kv, [2]string{"created", ago(r.CreatedAt, c.now())}, [2]string{"updated", ago(r.UpdatedAt, c.now())})
	return c.fields(kv)
}

func (c *cli) provisionListCmd() *cobra.Command {
	var status, provider string
	var pg pageFlags
	cmd := &cobra.Command{
		Use: "list [--status S] [--provider P] [--page N] [--limit N]", Short: "Lists the organization's provision requests.", Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			api, err := c.authed()
			if err != nil {
				return err
			}
			q := url.Values{}
			if status != "" {
				q.Set("status", status)
			}
			if provider != "" {
				q.Set("provider", provider)
			}
			var list struct {
				Data []provisionRequest `json:"data"`
				Meta listMeta           `json:"meta"`
			}
			raw, err := api.call(cmd.Context(), http.MethodGet, "/v1/provision?"+pg.query(q), nil, &list)
			if err != nil {
				return err
			}
			switch {
			case c.jsonOut():
				return c.writeJSON(raw)
			case c.quiet:
				ids := make([]string, len(list.Data))
				for i, r := range list.Data {
					ids[i] = r.ID
				}
				return c.ids(ids)
			}
			rows := make([][]string, len(list.Data))
			for i, r := range list.Data {
				rows[i] = []string{r.ID, r.Name, r.Provider, r.Region, r.InstanceType, c.status(r.Status), ago(r.CreatedAt, c.now())}
			}
			if err := c.table([]string{"ID", "NAME", "PROVIDER", "REGION", "TYPE", "STATUS", "CREATED"}, rows); err != nil {
				return err
			}
			c.more(list.Meta, len(rows))
			return nil
		},
	}
	pg.add(cmd)
	cmd.Flags().StringVar(&status, "status", "", "only requests in this status")
	cmd.Flags().StringVar(&provider, "provider", "", "only requests of this provider")
	return cmd
}

func (c *cli) provisionShowCmd() *cobra.Command {
	return &cobra.Command{
		Use: "show ID", Short: "Shows a provision request.", Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := c.authed()
			if err != nil {
				return err
			}
			var r provisionRequest
			raw, err := api.call(cmd.Context(), http.MethodGet, "/v1/provision/"+url.PathEscape(args[0]), nil, &r)
			if err != nil {
				return err
			}
			return c.showRequest(raw, r)
		},
	}
}

func (c *cli) provisionPlanCmd() *cobra.Command {
	var follow bool
	cmd := &cobra.Command{
		Use: "plan ID [--follow]", Short: "Plans a request (a plan run); --follow streams it and waits.", Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.step(cmd, http.MethodPost, "/v1/provision/"+url.PathEscape(args[0])+"/plan", follow)
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "stream the Terraform output live, then print the final status (exit 1 when it failed)")
	return cmd
}

func (c *cli) provisionApplyCmd() *cobra.Command {
	var follow, yes bool
	cmd := &cobra.Command{
		Use:   "apply ID [--follow] [--yes]",
		Short: "Shows the plan's changes, asks for confirmation, applies the plan.",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := c.canConfirm(cmd, yes); err != nil {
				return err
			}
			api, err := c.authed()
			if err != nil {
				return err
			}
			if err := c.showChanges(cmd.Context(), api, args[0]); err != nil {
				return err
			}
			if err := c.confirm(cmd, yes, "Apply these changes?"); err != nil {
				return err
			}
			return c.step(cmd, http.MethodPost, "/v1/provision/"+url.PathEscape(args[0])+"/apply", follow)
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "stream the Terraform output live, then print the final status (exit 1 when it failed)")
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "apply without asking")
	return cmd
}

func (c *cli) provisionDestroyCmd() *cobra.Command {
	var follow, yes bool
	cmd := &cobra.Command{
		Use: "destroy ID [--yes] [--follow]", Short: "Destroys what a request made (a destroy run).", Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := c.confirm(cmd, yes, fmt.Sprintf("Destroy everything provision request %s made?", args[0])); err != nil {
				return err
			}
			return c.step(cmd, http.MethodDelete, "/v1/provision/"+url.PathEscape(args[0]), follow)
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "stream the Terraform output live, then print the final status (exit 1 when it failed)")
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "destroy without asking")
	return cmd
}

func (c *cli) provisionCancelCmd() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use: "cancel ID [--force]", Short: "Cancels the request's current run (--force: kill Terraform at once).", Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := "/v1/provision/" + url.PathEscape(args[0]) + "/cancel"
			if force {
				path += "?force=true"
			}
			return c.step(cmd, http.MethodPost, path, false)
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "kill the Terraform process at once")
	return cmd
}

// step sends a plan, apply, destroy or cancel and prints the request; with
// follow it streams the queued run and answers an error when it failed.
func (c *cli) step(cmd *cobra.Command, method, path string, follow bool) error {
	api, err := c.authed()
	if err != nil {
		return err
	}
	var r provisionRequest
	raw, err := api.call(cmd.Context(), method, path, nil, &r)
	if err != nil {
		return err
	}
	if !follow || r.Run == nil {
		return c.showRequest(raw, r)
	}
	logs := c.stdout
	if c.jsonOut() || c.quiet {
		logs = c.stderr // stdout is for the JSON or the id
	}
	final, err := c.followRun(cmd.Context(), api, r.Run.ID, logs)
	if err != nil {
		return err
	}
	return c.finish(cmd.Context(), api, r.ID, final)
}

// finish prints a followed run's outcome and the request (JSON: the
// request as GET answers it) and fails when the run did not succeed.
func (c *cli) finish(ctx context.Context, api *apiClient, id string, final tfRun) error {
	var r provisionRequest
	raw, err := api.call(ctx, http.MethodGet, "/v1/provision/"+url.PathEscape(id), nil, &r)
	if err != nil {
		return err
	}
	switch {
	case c.jsonOut():
		if err := c.writeJSON(raw); err != nil {
			return err
		}
	case c.quiet:
		if err := c.ids([]string{r.ID}); err != nil {
			return err
		}
	default:
		fmt.Fprintf(c.stdout, "%s run %s: %s; request %s is %s\n", final.Kind, final.ID, c.status(final.Status), r.ID, c.status(r.Status))
	}
	if final.Status != "succeeded" {
		msg := final.Error
		if msg == "" {
			msg = "status " + final.Status
		}
		return fmt.Errorf("%s run %s %s: %s", final.Kind, final.ID, final.Status, msg)
	}
	return nil
}

// showChanges prints the resource changes of the plan an apply would apply.
func (c *cli) showChanges(ctx context.Context, api *apiClient, id string) error {
	var r provisionRequest
	if _, err := api.call(ctx, http.MethodGet, "/v1/provision/"+url.PathEscape(id), nil, &r); err != nil {
		return err
	}
	if r.PlanRunID == nil {
		return fmt.Errorf("provision request %s has no plan to apply (status %s): run shardform provision plan %s", r.ID, r.Status, r.ID)
	}
	var pr tfRun
	if _, err := api.call(ctx, http.MethodGet, "/v1/runs/"+url.PathEscape(*r.PlanRunID), nil, &pr); err != nil {
		return err
	}
	out := c.stdout
	if c.jsonOut() || c.quiet {
		out = c.stderr
	}
	printChanges(out, c, pr.Changes)
	return nil
}

// printChanges prints a plan's resource changes, Terraform-style.
func printChanges(w io.Writer, c *cli, s *planSummary) {
	if s == nil {
		fmt.Fprintln(w, "The plan has no resource changes recorded.")
		return
	}
	for _, r := range s.Resources {
		sign := map[string]string{"create": c.paint("32", "+"), "delete": c.paint("31", "-"), "update": c.paint("33", "~"), "replace": c.paint("31", "-/+")}[r.Action]
		fmt.Fprintf(w, "  %s %s (%s)\n", dash(sign), r.Address, r.Action)
	}
	fmt.Fprintf(w, "Plan: %d to add, %d to change, %d to destroy.\n", s.Add, s.Change, s.Destroy)
}

func (c *cli) provisionLogsCmd() *cobra.Command {
	var follow bool
	cmd := &cobra.Command{
		Use: "logs ID [--follow]", Short: "Prints the Terraform output of a request's runs (--follow: live).", Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := c.authed()
			if err != nil {
				return err
			}
			path := "/v1/provision/" + url.PathEscape(args[0]) + "/logs"
			if !follow {
				// Pages of at most 1,000 chunks, read on after the last id
				// (--output json: the first page, as the API answers it).
				after := int64(0)
				for {
					var logs struct {
						Data []struct {
							ID   int64  `json:"id"`
							Text string `json:"text"`
						} `json:"data"`
					}
					q := ""
					if after > 0 {
						q = "?after=" + strconv.FormatInt(after, 10)
					}
					raw, err := api.call(cmd.Context(), http.MethodGet, path+q, nil, &logs)
					if err != nil {
						return err
					}
					if c.jsonOut() {
						return c.writeJSON(raw)
					}
					for _, l := range logs.Data {
						writeChunk(c.stdout, l.Text)
						after = l.ID
					}
					if len(logs.Data) < provision.LogsPageSize {
						return nil
					}
				}
			}
			end, err := c.streamLogs(cmd.Context(), api, path+"?follow=1", &logStream{w: c.stdout})
			if err != nil {
				return err
			}
			var final struct {
				Status string `json:"status"`
				Error  string `json:"error"`
			}
			_ = json.Unmarshal(end, &final)
			fmt.Fprintf(c.stderr, "request %s is %s\n", args[0], c.status(final.Status))
			if final.Status == "failed" {
				return fmt.Errorf("provision request %s failed: %s", args[0], dash(final.Error))
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "stream live until the running job ends")
	return cmd
}

// followRun streams a run's output to w until it ends and answers the
// run as it ended.
func (c *cli) followRun(ctx context.Context, api *apiClient, id string, w io.Writer) (tfRun, error) {
	stop := c.progress(fmt.Sprintf("waiting for run %s", id))
	if w != io.Discard {
		w = &stopOnWrite{w: w, stop: stop} // the output replaces the spinner
	}
	// At every heartbeat of a quiet stream the run's row is read: a run
	// that ended without the stream's end event (its wake-up was lost)
	// does not keep the client waiting; its last lines are read after.
	finished := func() bool {
		var r tfRun
		_, err := api.call(ctx, http.MethodGet, "/v1/runs/"+url.PathEscape(id), nil, &r)
		return err == nil && r.Status != "queued" && r.Status != "running"
	}
	st := &logStream{w: w, ended: finished}
	_, err := c.streamLogs(ctx, api, "/v1/runs/"+url.PathEscape(id)+"/logs?follow=1", st)
	stop()
	if errors.Is(err, errStreamQuiet) {
		err = c.restOfLogs(ctx, api, "/v1/runs/"+url.PathEscape(id)+"/logs", st.last, w)
	}
	if err != nil {
		return tfRun{}, err
	}
	// The end event closes the stream; the run's row is the truth.
	for {
		var r tfRun
		if _, err := api.call(ctx, http.MethodGet, "/v1/runs/"+url.PathEscape(id), nil, &r); err != nil {
			return tfRun{}, err
		}
		if r.Status != "queued" && r.Status != "running" {
			return r, nil
		}
		select {
		case <-ctx.Done():
			return tfRun{}, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// stopOnWrite stops the spinner at the first output.
type stopOnWrite struct {
	w    io.Writer
	stop func()
}

func (s *stopOnWrite) Write(p []byte) (int, error) {
	s.stop()
	return s.w.Write(p)
}

// streamLogs reads a log event stream (Server-Sent Events: "log" events,
// then "end", or "error"), writes each chunk's text to st.w and answers
// the end event's data (errStreamQuiet when st.ended said the run is over
// at a heartbeat).
// errStreamQuiet: the stream's ended check said the run is over while the
// stream still waited.
var errStreamQuiet = errors.New("the log stream did not end with its run")

// logStream is where streamLogs writes, and what it tracks: the last log
// id written and, at each heartbeat, whether the run ended meanwhile.
type logStream struct {
	w     io.Writer
	ended func() bool // nil: wait for the end event only
	last  int64
}

// restOfLogs prints the stored log chunks after id after.
func (c *cli) restOfLogs(ctx context.Context, api *apiClient, path string, after int64, w io.Writer) error {
	for {
		var logs struct {
			Data []struct {
				ID   int64  `json:"id"`
				Text string `json:"text"`
			} `json:"data"`
		}
		if _, err := api.call(ctx, http.MethodGet, path+"?after="+strconv.FormatInt(after, 10), nil, &logs); err != nil {
			return err
		}
		for _, l := range logs.Data {
			writeChunk(w, l.Text)
			after = l.ID
		}
		if len(logs.Data) < provision.LogsPageSize {
			return nil
		}
	}
}

func (c *cli) streamLogs(ctx context.Context, api *apiClient, path string, st *logStream) ([]byte, error) {
	w := st.w
	resp, err := api.stream(ctx, path)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	var event string
	var data strings.Builder
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			switch event {
			case "log":
				var l struct {
					ID   int64  `json:"id"`
					Text string `json:"text"`
				}
				if err := json.Unmarshal([]byte(data.String()), &l); err == nil {
					writeChunk(w, l.Text)
					st.last = l.ID
				}
			case "end":
				return []byte(data.String()), nil
			case "error":
				var e struct {
					Error  string `json:"error"`
					Status int    `json:"status"`
				}
				_ = json.Unmarshal([]byte(data.String()), &e)
				return nil, &apiError{Status: e.Status, Message: dash(e.Error)}
			}
			event = ""
			data.Reset()
		case strings.HasPrefix(line, ":"):
			if st.ended != nil && st.ended() {
				return nil, errStreamQuiet
			}
		case strings.HasPrefix(line, "event:"):
			event = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
		case strings.HasPrefix(line, "data:"):
			if data.Len() > 0 {
				data.WriteByte('\n')
			}
			data.WriteString(strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " "))
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("the log stream broke: %w", err)
	}
	return nil, errors.New("the log stream ended without its end event")
}

// writeChunk writes a log chunk, ending in a newline.
func writeChunk(w io.Writer, text string) {
	io.WriteString(w, text)
	if !strings.HasSuffix(text, "\n") {
		io.WriteString(w, "\n")
	}
}

// cutLabel splits a k=v label.
func cutLabel(l string) (k, v string, ok bool) {
	k, v, ok = strings.Cut(l, "=")
	return k, v, ok && k != ""
}
