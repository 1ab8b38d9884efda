package terraform_test

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/shardform/shardform/terraform"
)

// sensitiveConfig has a sensitive variable flowing into a resource and a
// sensitive output: what a review must never show.
func sensitiveConfig() []byte {
	cfg := map[string]any{
		"terraform": map[string]any{"backend": map[string]any{"http": map[string]any{}}},
		"variable":  map[string]any{"token": map[string]any{"type": "string", "sensitive": true}},
		"resource": map[string]any{"terraform_data": map[string]any{"node": map[string]any{
			"input": map[string]any{"name": "web-1", "token": "${var.token}"},
		}}},
		"output": map[string]any{
			"token": map[string]any{"value": "${var.token}", "sensitive": true},
			"id":    map[string]any{"value": "${terraform_data.node.id}"},
		},
	}
	b, _ := json.Marshal(cfg)
	return b
}

// TestShowPlanMasks renders a real plan: the resource change is listed
// with its values, the sensitive ones masked; the secret appears nowhere.
func TestShowPlanMasks(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	var logs bytes.Buffer
	ws, err := b.runner(t).Open(ctx, "mask-1", sensitiveConfig(), &logs, b.backend(t, "mask-1"))
	if err != nil {
		t.Fatalf("open: %v\n%s", err, logs.String())
	}
	const secret = "s3cr3t-review-token"
	plan, err := ws.Plan(ctx, map[string]string{"token": secret}, false)
	if err != nil {
		t.Fatalf("plan: %v\n%s", err, logs.String())
	}
	r, err := ws.ShowPlan(ctx, plan.File)
	if err != nil {
		t.Fatalf("show: %v\n%s", err, logs.String())
	}
	if bytes.Contains(r.JSON, []byte(secret)) || strings.Contains(logs.String(), secret) {
		t.Fatalf("the secret is in the rendered plan or the log:\n%s", r.JSON)
	}
	if len(r.Changes) != 1 || r.Changes[0].Address != "terraform_data.node" || r.Changes[0].Action != "create" || r.Changes[0].Before != nil {
		t.Fatalf("changes %+v", r.Changes)
	}
	var after struct {
		Input map[string]string `json:"input"`
	}
	if err := json.Unmarshal(r.Changes[0].After, &after); err != nil {
		t.Fatal(err)
	}
	if after.Input["name"] != "web-1" || after.Input["token"] != terraform.Masked {
		t.Errorf("after %s", r.Changes[0].After)
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(r.JSON, &doc); err != nil {
		t.Fatal(err)
	}
	if _, ok := doc["configuration"]; ok {
		t.Error("the configuration is in the rendered plan")
	}
	if !bytes.Contains(doc["variables"], []byte(terraform.Masked)) {
		t.Errorf("variables %s", doc["variables"])
	}

	// Applied, nothing drifts: terraform_data has no remote side.
	if err := ws.Apply(ctx, plan.File, nil); err != nil {
		t.Fatalf("apply: %v\n%s", err, logs.String())
	}
	d, err := ws.Refresh(ctx, map[string]string{"token": secret})
	if err != nil || d.Drifted {
		t.Fatalf("refresh: %+v, %v\n%s", d, err, logs.String())
	}
}

func TestChangedAttributes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		before, after string
		want          []string
	}{
		{"same", `{"a":1,"b":[1,2]}`, `{"b":[1,2],"a":1}`, []string{}},
		{"changed and added", `{"a":1}`, `{"a":2,"b":"x"}`, []string{"a", "b"}},
		{"removed", `{"a":1,"b":2}`, `{"a":1}`, []string{"b"}},
		{"null is an empty map", `{"tags":null,"list":[{"t":null}]}`, `{"tags":{},"list":[{"t":{}}]}`, []string{}},
		{"nested change", `{"rules":[{"port":22}]}`, `{"rules":[{"port":2222}]}`, []string{"rules"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := terraform.ChangedAttributes(json.RawMessage(tc.before), json.RawMessage(tc.after)); !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}
