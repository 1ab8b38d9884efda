package domain

import (
	"errors"
	"net/mail"
	"regexp"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// The seed corpora below run in every `go test`; `go test -fuzz FuzzX
// ./domain/` explores further. Each target checks the validator against an
// oracle written independently of it (the unicode tables, a regexp).

// clean is the oracle of CheckText: valid UTF-8 without a control (Cc),
// bidirectional-control, line- or paragraph-separator character.
func clean(s string, multiline bool) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if multiline && (r == '\n' || r == '\t') {
			continue
		}
		if unicode.In(r, unicode.Cc, unicode.Bidi_Control, unicode.Zl, unicode.Zp) {
			return false
		}
	}
	return true
}

// asValidation fails unless err is a *ValidationError naming field whose
// message does not repeat a long value.
func asValidation(t *testing.T, err error, field, value string) {
	t.Helper()
	var verr *ValidationError
	if !errors.As(err, &verr) || verr.Field != field {
		t.Fatalf("err = %#v, want a ValidationError naming %s", err, field)
	}
	if len(value) > 40 && strings.Contains(err.Error(), value) {
		t.Fatalf("the error repeats the value: %q", err)
	}
}

func textSeeds(f *testing.F) {
	for _, s := range []string{
		"", "web-1", "Zürich 東京 👩‍💻", "a\x00b", "\x00", "a\tb", "a\nb\n", "a\r\nb", "\x1b[2J", "\x7f", "\u0085",
		"evil\u202Etxt.exe", "\u2066x\u2069", "\u200F", "\u061C", "\u2028", "\u2029", "\xff\xfe", "\xc3", "\ufeff", "\ufffd",
		strings.Repeat("a", 255), strings.Repeat("a", 256), strings.Repeat("é", 255), strings.Repeat("é", 256), strings.Repeat("x", 70000),
	} {
		f.Add(s)
	}
}

func FuzzCheckText(f *testing.F) {
	textSeeds(f)
	f.Fuzz(func(t *testing.T, s string) {
		for _, multiline := range []bool{false, true} {
			for _, max := range []int{1, 63, 255, 4096} {
				check := CheckText
				if multiline {
					check = CheckMultiline
				}
				err := check("field", s, max)
				want := clean(s, multiline) && utf8.RuneCountInString(s) <= max
				if (err == nil) != want {
					t.Fatalf("check(%q, max %d, multiline %v) = %v, want ok=%v", s, max, multiline, err, want)
				}
				if err != nil {
					asValidation(t, err, "field", s)
				}
			}
		}
	})
}

var canonicalUUID = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

func FuzzParseID(f *testing.F) {
	for _, s := range []string{
		"6ba7b810-9dad-11d1-80b4-00c04fd430c8", "6BA7B810-9DAD-11D1-80B4-00C04FD430C8", "{6ba7b810-9dad-11d1-80b4-00c04fd430c8}",
		"urn:uuid:6ba7b810-9dad-11d1-80b4-00c04fd430c8", "6ba7b8109dad11d180b400c04fd430c8", "00000000-0000-0000-0000-000000000000",
		"6ba7b810-9dad-11d1-80b4-00c04fd430c\x00", "", "x", "6ba7b810-9dad-11d1-80b4-00c04fd430c8\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseID("id", s)
		if want := canonicalUUID.MatchString(s); (err == nil) != want {
			t.Fatalf("ParseID(%q) = %v, %v; want ok=%v", s, id, err, want)
		}
		if err != nil {
			asValidation(t, err, "id", s)
			return
		}
		if id.String() != s {
			t.Fatalf("ParseID(%q) = %s: not the same form", s, id)
		}
	})
}

func FuzzEmail(f *testing.F) {
	textSeeds(f)
	for _, s := range []string{
		"alice@example.com", " Alice@Example.COM ", "Alice <alice@example.com>", "a@b", "@", "a@", "\"a b\"@example.com",
		"a\x00@example.com", "a\u202E@example.com", strings.Repeat("a", 243) + "@example.com", strings.Repeat("a", 1_000_000) + "@example.com",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		email, err := Email("email", raw)
		if err != nil {
			asValidation(t, err, "email", raw)
			return
		}
		if email != strings.ToLower(strings.TrimSpace(raw)) {
			t.Fatalf("Email(%q) = %q: not the trimmed lowercase address", raw, email)
		}
		if n := utf8.RuneCountInString(email); n > MaxEmailLength || !clean(email, false) {
			t.Fatalf("Email(%q) = %q: %d characters, clean %v", raw, email, n, clean(email, false))
		}
		if addr, perr := mail.ParseAddress(email); perr != nil || addr.Address != email || addr.Name != "" {
			t.Fatalf("Email(%q) = %q, which net/mail reads as %v, %v", raw, email, addr, perr)
		}
		if again, err := Email("email", email); err != nil || again != email {
			t.Fatalf("Email is not idempotent on %q: %q, %v", email, again, err)
		}
	})
}

func FuzzName(f *testing.F) {
	textSeeds(f)
	f.Fuzz(func(t *testing.T, raw string) {
		name, err := Name("name", raw, MaxNameLength)
		if err != nil {
			asValidation(t, err, "name", raw)
			return
		}
		if name == "" || name != strings.TrimSpace(raw) || utf8.RuneCountInString(name) > MaxNameLength || !clean(name, false) {
			t.Fatalf("Name(%q) = %q", raw, name)
		}
	})
}

var dnsLabelRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

func FuzzDNSLabel(f *testing.F) {
	textSeeds(f)
	for _, s := range []string{"a", "-", "a-", "-a", "web-01", "Web", strings.Repeat("a", 63), strings.Repeat("a", 64), "a.b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := DNSLabel("name", s)
		if want := dnsLabelRE.MatchString(s); (err == nil) != want {
			t.Fatalf("DNSLabel(%q) = %v, want ok=%v", s, err, want)
		}
		if err != nil {
			asValidation(t, err, "name", s)
		}
	})
}

var labelKeyRE = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9._/-]{0,61}[a-zA-Z0-9])?$`)

func FuzzLabels(f *testing.F) {
	for _, kv := range [][2]string{
		{"env", "prod"}, {"team/owner", "games"}, {"e\x00", "v"}, {"env", "a\x00"}, {"env", "\u202E"}, {"-x", "v"}, {"x", strings.Repeat("v", 256)},
		{strings.Repeat("k", 63), ""}, {strings.Repeat("k", 64), "v"}, {"k", "line\nbreak"}, {"ü", "v"},
	} {
		f.Add(kv[0], kv[1])
	}
	f.Fuzz(func(t *testing.T, k, v string) {
		err := Labels("labels", map[string]string{k: v})
		want := labelKeyRE.MatchString(k) && clean(v, false) && utf8.RuneCountInString(v) <= MaxLabelValueLength
		if (err == nil) != want {
			t.Fatalf("Labels({%q: %q}) = %v, want ok=%v", k, v, err, want)
		}
		if err != nil {
			var verr *ValidationError
			if !errors.As(err, &verr) || (verr.Field != "labels" && verr.Field != "labels."+k) {
				t.Fatalf("Labels({%q: %q}) err = %#v, want one naming labels", k, v, err)
			}
		}
	})
}
