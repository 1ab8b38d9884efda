package identity

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/shardform/shardform/domain"
)

// storedUserCode is the oracle of NormalizeUserCode's output, written
// independently of it: 8 characters without 0, O, 1 or I.
var storedUserCode = regexp.MustCompile(`^[A-HJ-NP-Z2-9]{8}$`)

// userCodeOracle is what NormalizeUserCode must answer for raw, by another
// route: trim, drop a middle dash, uppercase ASCII letters, match the regexp.
func userCodeOracle(raw string) (string, bool) {
	s := strings.Trim(raw, " \t\n\r\v\f\u0085\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")
	if len(s) == 9 && s[4] == '-' {
		s = s[:4] + s[5:]
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' {
			c = c - 'a' + 'A'
		}
		b.WriteByte(c)
	}
	out := b.String()
	return out, storedUserCode.MatchString(out)
}

func userCodeSeeds(f *testing.F) {
	for _, s := range []string{
		"ABCD-2345", "abcd-2345", "abcd2345", " ABCD2345 ", "\tWXYZ-9876\n", "AbCd-EfGh",
		"", "-", "ABCD-234", "ABCD--2345", "ABCD-23456", "ABC-D2345", "ABCD 2345", "ABCD2345-", "-ABCD2345",
		"ABCD-0000", "OOOO-1111", "IIII-IIII", "abcd-iiii", "ABCD-234O", "ABCDé234", "ABCD\x002345", "ＡＢＣＤ-２３４５",
		"ABCD\u200b2345", "ſſſſ-2345", "ıııı-2345", "K\u212aKK-2345", strings.Repeat("A", 1000), "\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8",
	} {
		f.Add(s)
	}
}

// FuzzNormalizeUserCode: NormalizeUserCode accepts exactly what the oracle
// accepts, answers the oracle's form, and its answer round-trips through
// FormatUserCode. A refusal is a ValidationError naming user_code that
// never repeats the input.
func FuzzNormalizeUserCode(f *testing.F) {
	userCodeSeeds(f)
	f.Fuzz(func(t *testing.T, raw string) {
		got, err := NormalizeUserCode(raw)
		want, ok := userCodeOracle(raw)
		if !ok {
			var verr *domain.ValidationError
			if err == nil || !errors.As(err, &verr) || verr.Field != "user_code" {
				t.Fatalf("NormalizeUserCode(%q) = %q, %v; want a ValidationError naming user_code", raw, got, err)
			}
			if len(strings.TrimSpace(raw)) > 9 && strings.Contains(err.Error(), strings.TrimSpace(raw)) {
				t.Fatalf("the error repeats the input: %v", err)
			}
			return
		}
		if err != nil || got != want {
			t.Fatalf("NormalizeUserCode(%q) = %q, %v; want %q", raw, got, err, want)
		}
		shown := FormatUserCode(got)
		if len(shown) != 9 || shown[4] != '-' || strings.ReplaceAll(shown, "-", "") != got {
			t.Fatalf("FormatUserCode(%q) = %q", got, shown)
		}
		for _, again := range []string{shown, got, strings.ToLower(shown)} {
			if n, err := NormalizeUserCode(again); err != nil || n != got {
				t.Fatalf("NormalizeUserCode(%q) = %q, %v; want %q", again, n, err, got)
			}
		}
	})
}

func TestNewUserCode(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 1000 {
		c, err := newUserCode()
		if err != nil {
			t.Fatal(err)
		}
		if !storedUserCode.MatchString(c) {
			t.Fatalf("user code %q", c)
		}
		if n, err := NormalizeUserCode(FormatUserCode(c)); err != nil || n != c {
			t.Fatalf("user code %q does not round-trip: %q, %v", c, n, err)
		}
		seen[c] = true
	}
	if len(seen) < 999 {
		t.Fatalf("%d distinct user codes in 1000", len(seen))
	}
	for _, r := range "0O1I" {
		if strings.ContainsRune(UserCodeAlphabet, r) {
			t.Errorf("the alphabet has %q", r)
		}
	}
	if len(UserCodeAlphabet) != 32 {
		t.Errorf("alphabet of %d characters: a byte does not map onto it without bias", len(UserCodeAlphabet))
	}
}
