package sshsign

import "testing"

func TestUsername(t *testing.T) {
	t.Parallel()
	tests := []struct {
		email, want string
	}{
		{"alice@example.com", "alice"},
		{"Bob_2@example.com", "bob_2"},
		{"deploy-bot@example.com", "deploy-bot"},
		{"_svc@example.com", "_svc"},
		{"root@example.com", ""},
		{"shardform@example.com", ""},
		{"www-data@example.com", ""},
		{"first.last@example.com", ""},
		{"alice+ssh@example.com", ""},
		{"1alice@example.com", ""},
		{"-alice@example.com", ""},
		{"averyveryveryverylongloginnamethatgoesonandon@example.com", ""},
		{"no-at-sign", ""},
		{"", ""},
	}
	for _, tt := range tests {
		t.Run(tt.email, func(t *testing.T) {
			t.Parallel()
			if got := Username(tt.email); got != tt.want {
				t.Errorf("Username(%q) = %q, want %q", tt.email, got, tt.want)
			}
		})
	}
}
