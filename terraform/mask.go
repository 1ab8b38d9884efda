package terraform

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"

	tfjson "github.com/hashicorp/terraform-json"
)

// Masked stands for a sensitive value in a rendered plan.
const Masked = "(sensitive value)"

// RenderedPlan is a plan as `terraform show -json` describes it, with
// every sensitive value masked: the JSON plan (terraform-json's Plan) and
// each resource change with its masked before and after values.
type RenderedPlan struct {
	JSON    json.RawMessage
	Changes []ResourceChange
	Drift   []ResourceChange // changes made outside Terraform (refresh)
}

// MaskPlan decodes the output of `terraform show -json <plan>` and masks
// what Terraform marks sensitive: resource and output changes (before and
// after), the drift, the planned values and the prior state. Root
// variables are masked whole (their values may be credentials) and the
// configuration is left out (the generated configuration is shardform's
// own, and holds no value a review needs).
func MaskPlan(raw []byte) (RenderedPlan, error) {
	var p tfjson.Plan
	if err := json.Unmarshal(raw, &p); err != nil {
		return RenderedPlan{}, fmt.Errorf("terraform show -json: %w", err)
	}
	for _, v := range p.Variables {
		if v != nil {
			v.Value = Masked
		}
	}
	p.Config = nil
	var out RenderedPlan
	var err error
	if out.Changes, err = maskChanges(p.ResourceChanges); err != nil {
		return RenderedPlan{}, err
	}
	if out.Drift, err = maskChanges(p.ResourceDrift); err != nil {
		return RenderedPlan{}, err
	}
	for _, c := range p.OutputChanges {
		maskChange(c)
	}
	if p.PlannedValues != nil {
		if err := maskModule(p.PlannedValues.RootModule); err != nil {
			return RenderedPlan{}, err
		}
		p.PlannedValues.Outputs = maskOutputs(p.PlannedValues.Outputs)
	}
	if p.PriorState != nil && p.PriorState.Values != nil {
		if err := maskModule(p.PriorState.Values.RootModule); err != nil {
			return RenderedPlan{}, err
		}
		p.PriorState.Values.Outputs = maskOutputs(p.PriorState.Values.Outputs)
	}
	if out.JSON, err = json.Marshal(&p); err != nil {
		return RenderedPlan{}, fmt.Errorf("encode masked plan: %w", err)
	}
	return out, nil
}

// maskChanges masks each change in place and lists it as a ResourceChange.
func maskChanges(rcs []*tfjson.ResourceChange) ([]ResourceChange, error) {
	out := make([]ResourceChange, 0, len(rcs))
	for _, rc := range rcs {
		if rc == nil || rc.Change == nil {
			continue
		}
		maskChange(rc.Change)
		before, err := rawOrNone(rc.Change.Before)
		if err != nil {
			return nil, fmt.Errorf("encode %s: %w", rc.Address, err)
		}
		after, err := rawOrNone(rc.Change.After)
		if err != nil {
			return nil, fmt.Errorf("encode %s: %w", rc.Address, err)
		}
		out = append(out, ResourceChange{Address: rc.Address, Type: rc.Type, Action: ActionOf(rc.Change.Actions), Before: before, After: after})
	}
	return out, nil
}

// rawOrNone encodes v; nil (no value: before a create, after a delete)
// is no JSON at all, so the field is left out.
func rawOrNone(v any) (json.RawMessage, error) {
	if v == nil {
		return nil, nil
	}
	return json.Marshal(v)
}

func maskChange(c *tfjson.Change) {
	if c == nil {
		return
	}
	c.Before = mask(c.Before, c.BeforeSensitive)
	c.After = mask(c.After, c.AfterSensitive)
}

func maskOutputs(outs map[string]*tfjson.StateOutput) map[string]*tfjson.StateOutput {
	for _, o := range outs {
		if o != nil && o.Sensitive {
			o.Value = Masked
		}
	}
	return outs
}

func maskModule(m *tfjson.StateModule) error {
	if m == nil {
		return nil
	}
	for _, r := range m.Resources {
		if r == nil || len(r.SensitiveValues) == 0 {
			continue
		}
		var sens any
		if err := json.Unmarshal(r.SensitiveValues, &sens); err != nil {
			return fmt.Errorf("sensitive values of %s: %w", r.Address, err)
		}
		if vals, ok := mask(map[string]any(r.AttributeValues), sens).(map[string]any); ok {
			r.AttributeValues = vals
		}
	}
	for _, c := range m.ChildModules {
		if err := maskModule(c); err != nil {
			return err
		}
	}
	return nil
}

// mask replaces the parts of v that sens (Terraform's sensitivity mask:
// true, or an object or list of masks shaped like the value) marks.
func mask(v, sens any) any {
	switch s := sens.(type) {
	case bool:
		if s && v != nil {
			return Masked
		}
		return v
	case map[string]any:
		m, ok := v.(map[string]any)
		if !ok {
			return v
		}
		out := make(map[string]any, len(m))
		for k, val := range m {
			out[k] = mask(val, s[k])
		}
		return out
	case []any:
		l, ok := v.([]any)
		if !ok {
			return v
		}
		out := make([]any, len(l))
		for i, val := range l {
			var si any
			if i < len(s) {
				si = s[i]
			}
			out[i] = mask(val, si)
		}
		return out
	}
	return v
}

// ActionOf names a change's actions as a review shows them: create,
// update, delete, replace, read or no-op (forget for a removed block).
func ActionOf(a tfjson.Actions) string {
	switch {
	case a.Replace():
		return "replace"
	case a.Create():
		return "create"
	case a.Update():
		return "update"
	case a.Delete():
		return "delete"
	case a.Read():
		return "read"
	case a.Forget():
		return "forget"
	}
	return "no-op"
}

// ChangedAttributes lists the top-level attributes whose values differ
// between two JSON objects (a resource's before and after), sorted. A null
// and an empty object or list are the same value here: providers read back
// one where they wrote the other (an unset map becomes {}), which is not a
// change anyone made.
func ChangedAttributes(before, after json.RawMessage) []string {
	var b, a map[string]any
	_ = json.Unmarshal(before, &b)
	_ = json.Unmarshal(after, &a)
	out := []string{}
	for k := range a {
		if !reflect.DeepEqual(normalize(a[k]), normalize(b[k])) {
			out = append(out, k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok && normalize(b[k]) != nil {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// normalize drops nulls and empty objects and lists, recursively (nil
// when nothing is left).
func normalize(v any) any {
	switch t := v.(type) {
	case map[string]any:
		m := map[string]any{}
		for k, e := range t {
			if n := normalize(e); n != nil {
				m[k] = n
			}
		}
		if len(m) == 0 {
			return nil
		}
		return m
	case []any:
		if len(t) == 0 {
			return nil
		}
		l := make([]any, len(t))
		for i, e := range t {
			l[i] = normalize(e)
		}
		return l
	}
	return v
}
