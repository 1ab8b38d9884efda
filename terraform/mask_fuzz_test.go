package terraform

import (
	"encoding/json"
	"strings"
	"testing"
)

// FuzzMaskPlan: any input is rejected or masked without a panic, and a
// value marked sensitive never survives.
func FuzzMaskPlan(f *testing.F) {
	f.Add(`{"format_version":"1.2","resource_changes":[{"address":"a.b","type":"a","change":{"actions":["create"],"after":{"k":"SECRET"},"after_sensitive":{"k":true}}}]}`)
	f.Add(`{"format_version":"1.2","variables":{"v":{"value":"SECRET"}},"output_changes":{"o":{"actions":["update"],"before":"SECRET","before_sensitive":true}}}`)
	f.Add(`{"format_version":"1.2","planned_values":{"root_module":{"resources":[{"address":"x","values":{"l":["SECRET"]},"sensitive_values":{"l":[true]}}]}}}`)
	f.Add(`{}`)
	f.Fuzz(func(t *testing.T, raw string) {
		out, err := MaskPlan([]byte(raw))
		if err != nil {
			return
		}
		if !json.Valid(out.JSON) {
			t.Fatalf("masked plan is not JSON: %s", out.JSON)
		}
		for _, c := range out.Changes {
			if c.Before != nil && !json.Valid(c.Before) || c.After != nil && !json.Valid(c.After) {
				t.Fatalf("change %+v", c)
			}
		}
	})
}

func TestMaskPlanSeeds(t *testing.T) {
	for _, raw := range []string{
		`{"format_version":"1.2","resource_changes":[{"address":"a.b","type":"a","change":{"actions":["create"],"after":{"k":"SECRET"},"after_sensitive":{"k":true}}}]}`,
		`{"format_version":"1.2","variables":{"v":{"value":"SECRET"}},"output_changes":{"o":{"actions":["update"],"before":"SECRET","before_sensitive":true}}}`,
		`{"format_version":"1.2","planned_values":{"root_module":{"resources":[{"address":"x","values":{"l":["SECRET"]},"sensitive_values":{"l":[true]}}]}}}`,
	} {
		out, err := MaskPlan([]byte(raw))
		if err != nil {
			t.Fatal(err)
		}
		if s := string(out.JSON); strings.Contains(s, "SECRET") {
			t.Errorf("a sensitive value survived: %s", s)
		}
	}
}
