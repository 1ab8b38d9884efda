package domain

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckText(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		in        string
		max       int
		multiline bool
		rule      string // "" when accepted
	}{
		{"plain", "web-1 (Frankfurt)", 255, false, ""},
		{"unicode letters and emoji", "Zürich 東京 👩‍💻", 255, false, ""},
		{"at the limit in characters", strings.Repeat("é", 10), 10, false, ""},
		{"over the limit", strings.Repeat("a", 11), 10, false, "must be at most 10 characters"},
		{"over the limit in characters, not bytes", strings.Repeat("é", 11), 10, false, "must be at most 10 characters"},
		{"huge", strings.Repeat("a", 1<<20), 254, false, "must be at most 254 characters"},
		{"NUL", "a\x00b", 255, false, "control characters (U+0000 at character 2)"},
		{"tab in one line", "a\tb", 255, false, "control characters (U+0009"},
		{"newline in one line", "a\nb", 255, false, "control characters (U+000A"},
		{"carriage return", "a\rb", 255, true, "control characters (U+000D"},
		{"DEL", "a\x7f", 255, false, "control characters (U+007F"},
		{"C1", "a\u0085", 255, false, "control characters (U+0085"},
		{"escape", "\x1b[31mred", 255, false, "control characters (U+001B at character 1)"},
		{"right-to-left override", "evil\u202Etxt.exe", 255, false, "bidirectional control characters (U+202E at character 5)"},
		{"right-to-left isolate", "a\u2067b", 255, false, "bidirectional control characters (U+2067"},
		{"right-to-left mark", "a\u200Fb", 255, false, "bidirectional control characters (U+200F"},
		{"arabic letter mark", "a\u061Cb", 255, false, "bidirectional control characters (U+061C"},
		{"line separator", "a\u2028b", 255, false, "line or paragraph separators (U+2028"},
		{"invalid UTF-8", "a\xffb", 255, false, "must be valid UTF-8"},
		{"multiline newline and tab", "line 1\n\tline 2\n", 255, true, ""},
		{"multiline NUL", "line 1\n\x00", 255, true, "control characters (U+0000 at character 8)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			check := CheckText
			if tt.multiline {
				check = CheckMultiline
			}
			err := check("labels.env", tt.in, tt.max)
			if tt.rule == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var verr *ValidationError
			if !errors.As(err, &verr) || verr.Field != "labels.env" || !strings.Contains(verr.Rule, tt.rule) {
				t.Fatalf("err = %v, want labels.env: ...%s...", err, tt.rule)
			}
			if len(tt.in) > 8 && strings.Contains(err.Error(), tt.in) {
				t.Errorf("the error repeats the value: %v", err)
			}
		})
	}
}

func TestParseID(t *testing.T) {
	t.Parallel()
	const canonical = "6ba7b810-9dad-11d1-80b4-00c04fd430c8"
	tests := []struct {
		in string
		ok bool
	}{
		{canonical, true},
		{"00000000-0000-0000-0000-000000000000", true},
		{strings.ToUpper(canonical), false},
		{"6BA7B810-9dad-11d1-80b4-00c04fd430c8", false},
		{"{" + canonical + "}", false},
		{"urn:uuid:" + canonical, false},
		{"6ba7b8109dad11d180b400c04fd430c8", false},
		{canonical + " ", false},
		{" " + canonical, false},
		{canonical[:35], false},
		{canonical + "\x00", false},
		{"6ba7b810-9dad-11d1-80b4-00c04fd430cg", false},
		{"6ba7b810_9dad_11d1_80b4_00c04fd430c8", false},
		{"", false},
		{"not-a-uuid", false},
	}
	for _, tt := range tests {
		id, err := ParseID("node_id", tt.in)
		if tt.ok {
			if err != nil || id.String() != tt.in {
				t.Errorf("ParseID(%q) = %v, %v", tt.in, id, err)
			}
			continue
		}
		var verr *ValidationError
		if !errors.As(err, &verr) || verr.Field != "node_id" || !strings.Contains(verr.Rule, "canonical lowercase UUID") {
			t.Errorf("ParseID(%q) err = %v, want node_id: must be a canonical lowercase UUID", tt.in, err)
		}
	}
}

func TestEmail(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want, rule string
	}{
		{"  Alice@Example.COM ", "alice@example.com", ""},
		{"", "", "is required"},
		{"   ", "", "is required"},
		{strings.Repeat("a", 243) + "@example.com", "", "at most 254 characters"},
		{strings.Repeat("a", 1_000_000) + "@example.com", "", "at most 254 characters"},
		{"a\x00b@example.com", "", "control characters"},
		{"a\u202Eb@example.com", "", "bidirectional"},
		{"Alice <alice@example.com>", "", "valid email address"},
		{"no-at-sign", "", "valid email address"},
	}
	for _, tt := range tests {
		got, err := Email("email", tt.in)
		if tt.rule == "" {
			if err != nil || got != tt.want {
				t.Errorf("Email(%.40q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
			continue
		}
		var verr *ValidationError
		if !errors.As(err, &verr) || verr.Field != "email" || !strings.Contains(verr.Rule, tt.rule) {
			t.Errorf("Email(%.40q) err = %v, want email: ...%s", tt.in, err, tt.rule)
		}
	}
}

func TestDNSLabelAndLabels(t *testing.T) {
	t.Parallel()
	for in, ok := range map[string]bool{
		"web-1": true, "a": true, strings.Repeat("a", 63): true,
		"": false, strings.Repeat("a", 64): false, "-a": false, "a-": false, "Web": false, "a_b": false, "a\x00": false, "ä": false,
	} {
		if err := DNSLabel("name", in); (err == nil) != ok {
			t.Errorf("DNSLabel(%q) = %v, want ok=%v", in, err, ok)
		}
	}
	tests := []struct {
		labels map[string]string
		field  string // "" when accepted
	}{
		{map[string]string{"env": "prod", "team/owner": "games", "a.b_c-d": strings.Repeat("v", 255)}, ""},
		{map[string]string{"env": "pr\x00od"}, "labels.env"},
		{map[string]string{"env": "a\u202Eb"}, "labels.env"},
		{map[string]string{"env": strings.Repeat("v", 256)}, "labels.env"},
		{map[string]string{"e\x00nv": "prod"}, "labels"},
		{map[string]string{"-env": "prod"}, "labels"},
		{map[string]string{strings.Repeat("k", 64): "prod"}, "labels"},
	}
	for _, tt := range tests {
		err := Labels("labels", tt.labels)
		if tt.field == "" {
			if err != nil {
				t.Errorf("Labels(%q) = %v", tt.labels, err)
			}
			continue
		}
		var verr *ValidationError
		if !errors.As(err, &verr) || verr.Field != tt.field {
			t.Errorf("Labels(%q) err = %v, want one naming %s", tt.labels, err, tt.field)
		}
	}
	many := map[string]string{}
	for i := range MaxLabels + 1 {
		many[strings.Repeat("k", i+1)] = "v"
	}
	if err := Labels("labels", many); err == nil {
		t.Error("51 labels accepted")
	}
}

func TestTruncate(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly10!", 10, "exactly10!"},
		{"0123456789abc", 10, "0123456789…(13 bytes)"},
		{"ééééé", 5, "éé…(10 bytes)"}, // never half a rune
	} {
		if got := Truncate(tc.in, tc.n); got != tc.want {
			t.Errorf("Truncate(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}
