package sshsign_test

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shardform/shardform/sshsign"
)

// A signing job's args are stored as one key with one string value (River
// indexes every key and value of the args), decode to the same request,
// and args stored as a plain object by an earlier version still decode.
func TestSignArgsJSON(t *testing.T) {
	hours := 4
	node := uuid.New()
	token := uuid.New()
	full := sshsign.SignArgs{
		OrganizationID: uuid.New(), UserID: uuid.New(), User: "ops@example.com", Username: "ops",
		PublicKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB", Principals: []string{"root", "ops"},
		ValidityHours: &hours, SourceAddress: "10.0.0.0/8", NodeID: &node,
		NotAfter: time.Date(2026, 11, 23, 16, 0, 0, 0, time.UTC), Reply: "p1/42",
		Audit: &sshsign.AuditArgs{Action: "ssh.certificate.sign", Status: 200, RequestID: "r1", IP: "127.0.0.1", APITokenID: &token},
	}
	minimal := sshsign.SignArgs{OrganizationID: uuid.New(), UserID: uuid.New(), User: "a@example.com",
		PublicKey: "ssh-ed25519 AAAA", Principals: []string{"root"}, NotAfter: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	for _, tc := range []struct {
		name string
		args sshsign.SignArgs
	}{{"full", full}, {"minimal", minimal}} {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := json.Marshal(tc.args)
			if err != nil {
				t.Fatal(err)
			}
			var stored map[string]any
			if err := json.Unmarshal(raw, &stored); err != nil {
				t.Fatal(err)
			}
			if _, ok := stored["request"].(string); !ok || len(stored) != 1 {
				t.Fatalf("stored args %s: want one key \"request\" with a string value", raw)
			}
			var got sshsign.SignArgs
			if err := json.Unmarshal(raw, &got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.args) {
				t.Errorf("decoded %+v, want %+v", got, tc.args)
			}
		})
	}
	t.Run("plain object of an earlier version", func(t *testing.T) {
		legacy := `{"organization_id":"` + full.OrganizationID.String() + `","user_id":"` + full.UserID.String() +
			`","user":"ops@example.com","public_key":"ssh-ed25519 AAAA","principals":["root"],"not_after":"2026-11-23T16:00:00Z","reply":"p1/42"}`
		var got sshsign.SignArgs
		if err := json.Unmarshal([]byte(legacy), &got); err != nil {
			t.Fatal(err)
		}
		if got.OrganizationID != full.OrganizationID || got.User != "ops@example.com" || got.Reply != "p1/42" ||
			len(got.Principals) != 1 || !got.NotAfter.Equal(full.NotAfter) {
			t.Errorf("decoded %+v", got)
		}
	})
	t.Run("malformed request", func(t *testing.T) {
		var got sshsign.SignArgs
		if err := json.Unmarshal([]byte(`{"request":"{not json"}`), &got); err == nil {
			t.Error("decoded a malformed request without an error")
		}
	})
}
