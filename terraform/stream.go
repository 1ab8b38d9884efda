package terraform

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// uiMessage is one line of Terraform's machine-readable UI (`-json`):
// https://developer.hashicorp.com/terraform/internals/machine-readable-ui.
// Only the fields shardform reads are decoded.
type uiMessage struct {
	Level   string `json:"@level"`
	Message string `json:"@message"`
	Type    string `json:"type"`
	Change  *struct {
		Resource struct {
			Addr string `json:"addr"`
			Type string `json:"resource_type"`
		} `json:"resource"`
		Action string `json:"action"`
	} `json:"change"`
	Changes *struct {
		Add    int `json:"add"`
		Change int `json:"change"`
		Remove int `json:"remove"`
	} `json:"changes"`
	Outputs    map[string]uiOutput `json:"outputs"`
	Diagnostic *struct {
		Severity string `json:"severity"`
		Summary  string `json:"summary"`
		Detail   string `json:"detail"`
	} `json:"diagnostic"`
}

type uiOutput struct {
	Sensitive bool            `json:"sensitive"`
	Value     json.RawMessage `json:"value"`
}

// streamResult is what a plan or apply stream said.
type streamResult struct {
	summary     PlanSummary
	sawSummary  bool
	outputs     map[string]json.RawMessage // non-sensitive values of an apply's outputs message
	sensitive   bool                       // an output's value was withheld (sensitive)
	sawOutputs  bool
	drift       []ResourceChange // resource_drift messages: changes made outside Terraform
	errors      []string         // error diagnostics: summary and detail
	unparseable int              // lines that were not JSON (copied to the log as they are)
}

// readStream reads a `-json` stream: every message's human text goes to
// logs as a line (diagnostics with their detail), and the plan summary,
// the planned changes, the outputs and the error diagnostics are kept.
// Values of sensitive outputs never appear in the stream, so never in the
// logs. A line that is not JSON is copied to logs unchanged.
func readStream(r io.Reader, logs io.Writer) (streamResult, error) {
	res := streamResult{summary: PlanSummary{Resources: []ResourceChange{}}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	for sc.Scan() {
		line := sc.Bytes()
		var m uiMessage
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &m) != nil {
			res.unparseable++
			fmt.Fprintf(logs, "%s\n", line)
			continue
		}
		res.add(m, logs)
	}
	return res, sc.Err()
}

func (res *streamResult) add(m uiMessage, logs io.Writer) {
	switch m.Type {
	case "version":
		return // the binary's version is known; not worth a log line
	case "planned_change":
		if m.Change != nil {
			res.summary.Resources = append(res.summary.Resources, ResourceChange{Address: m.Change.Resource.Addr, Type: m.Change.Resource.Type, Action: streamAction(m.Change.Action)})
		}
	case "resource_drift":
		if m.Change != nil {
			res.drift = append(res.drift, ResourceChange{Address: m.Change.Resource.Addr, Type: m.Change.Resource.Type, Action: streamAction(m.Change.Action)})
		}
	case "change_summary":
		if m.Changes != nil {
			res.summary.Add, res.summary.Change, res.summary.Destroy = m.Changes.Add, m.Changes.Change, m.Changes.Remove
			res.sawSummary = true
		}
	case "outputs":
		res.sawOutputs = true
		res.outputs = map[string]json.RawMessage{}
		for name, o := range m.Outputs {
			if o.Sensitive || o.Value == nil {
				res.sensitive = res.sensitive || o.Sensitive
				continue
			}
			res.outputs[name] = o.Value
		}
	case "diagnostic":
		if d := m.Diagnostic; d != nil {
			text := d.Summary
			if d.Detail != "" {
				text += ": " + d.Detail
			}
			if d.Severity == "error" {
				res.errors = append(res.errors, text)
			}
			fmt.Fprintf(logs, "%s: %s\n", capitalize(d.Severity), text)
			return
		}
	}
	if m.Message != "" {
		fmt.Fprintf(logs, "%s\n", m.Message)
	}
}

// streamAction names a planned_change's action as a review (and ActionOf,
// for a rendered plan) does: create, update, delete, replace and read as
// Terraform writes them, "noop" as no-op and "remove" (a removed block) as
// forget; any other (move, import) as Terraform says it. Every action is
// listed: the counts are change_summary's, as Terraform gives them (it
// counts neither reads nor no-ops).
func streamAction(a string) string {
	switch a {
	case "noop":
		return "no-op"
	case "remove":
		return "forget"
	}
	return a
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// failure is the error diagnostics of a failed command, in one message.
func (res streamResult) failure() string {
	return strings.Join(res.errors, "; ")
}
