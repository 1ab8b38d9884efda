package tfstate_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/shardform/shardform/domain"
	"github.com/shardform/shardform/tfstate"
)

// FuzzParseStateMeta: any input either parses to a serial and lineage that
// a state file round-trips, or is a validation error; never a panic.
// The seeds run with every go test.
func FuzzParseStateMeta(f *testing.F) {
	for _, seed := range []string{
		`{"version":4,"terraform_version":"1.11.4","serial":3,"lineage":"6f1d3c0e-4b7a-4c1e-9f3a-2d5b8e7c1a90","outputs":{},"resources":[]}`,
		`{"serial":0,"lineage":"x"}`,
		`  {"serial":9223372036854775807,"lineage":"x"}`,
		`{"serial":9223372036854775808,"lineage":"x"}`,
		`{"serial":-1,"lineage":"x"}`,
		`{"serial":-0,"lineage":"x"}`,
		`{"serial":1.5,"lineage":"x"}`,
		`{"serial":1e3,"lineage":"x"}`,
		`{"serial":"1","lineage":"x"}`,
		`{"serial":1,"lineage":""}`,
		`{"serial":1,"lineage":1}`,
		`{"serial":1,"lineage":"a\u0000b"}`,
		`{"serial":1}`,
		`{"lineage":"x"}`,
		`{"serial":null,"lineage":"x"}`,
		`{"serial":1,"lineage":"x","serial":2}`,
		`[]`,
		`null`,
		``,
		`{`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := tfstate.ParseStateMeta(data)
		if err != nil {
			var ve *domain.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("error %v (%T) is not a validation error", err, err)
			}
			return
		}
		if m.Serial < 0 || m.Lineage == "" || len([]rune(m.Lineage)) > tfstate.MaxLineageLength {
			t.Fatalf("parsed %+v", m)
		}
		again, err := json.Marshal(map[string]any{"serial": m.Serial, "lineage": m.Lineage})
		if err != nil {
			t.Fatal(err)
		}
		m2, err := tfstate.ParseStateMeta(again)
		if err != nil || m2 != m {
			t.Fatalf("round trip of %+v: %+v, %v", m, m2, err)
		}
	})
}

func TestParseStateMeta(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    tfstate.StateMeta
		wantErr string
	}{
		{in: `{"serial":3,"lineage":"abc"}`, want: tfstate.StateMeta{Serial: 3, Lineage: "abc"}},
		{in: `{"serial":-0,"lineage":"x"}`, wantErr: "serial: must be a whole number"},
		{in: `{"serial":1.0,"lineage":"x"}`, wantErr: "serial: must be a whole number"},
		{in: `{"serial":9223372036854775808,"lineage":"x"}`, wantErr: "serial: must be a whole number"},
		{in: `{"serial":1,"lineage":""}`, wantErr: "lineage: is required"},
		{in: `{"serial":1,"lineage":5}`, wantErr: "lineage: must be a string"},
		{in: `{"lineage":"x"}`, wantErr: "serial: is required"},
		{in: `[1]`, wantErr: "state: must be a Terraform state file"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := tfstate.ParseStateMeta([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("= %+v, %v", got, err)
			}
		})
	}
}
