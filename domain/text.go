package domain

import (
	"fmt"
	"net/mail"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"
)

// Maximum lengths of string inputs, in characters (Unicode code points).
// Every string the API takes has one: its own below, or MaxTextLength.
const (
	// MaxEmailLength is RFC 5321's limit on a forward path.
	MaxEmailLength = 254
	// MaxDNSLabelLength is one DNS label (RFC 1035): node and instance names.
	MaxDNSLabelLength = 63
	// MaxNameLength bounds display names (organizations, credentials, API tokens).
	MaxNameLength = 100
	// MaxTextLength bounds every other string field, query parameter and
	// path parameter that has no limit of its own.
	MaxTextLength = 255
	// MaxLabelKeyLength and MaxLabelValueLength bound labels.
	MaxLabelKeyLength   = 63
	MaxLabelValueLength = 255
	// MaxSecretLength bounds one field of a cloud credential's secret.
	MaxSecretLength = 4096
	// MaxPasswordLength bounds a password (argon2's input).
	MaxPasswordLength = 1024
	// MaxPublicKeyLength bounds an OpenSSH public key in authorized_keys
	// form (an RSA 16384-bit key is about 2,800 characters).
	MaxPublicKeyLength = 16384
)

// BadRune reports the first character of s that input text may not hold:
// invalid UTF-8 (reported as utf8.RuneError), a control character (C0, DEL,
// C1), a Unicode bidirectional control (U+061C, U+200E, U+200F,
// U+202A-U+202E, U+2066-U+2069) or a line or paragraph separator
// (U+2028, U+2029). multiline lets \n and \t through.
// ok is false when s is clean.
func BadRune(s string, multiline bool) (r rune, pos int, ok bool) {
	pos = 0
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size <= 1 {
			return utf8.RuneError, pos, true
		}
		if forbidden(r, multiline) {
			return r, pos, true
		}
		i += size
		pos++
	}
	return 0, 0, false
}

func forbidden(r rune, multiline bool) bool {
	switch {
	case multiline && (r == '\n' || r == '\t'):
		return false
	case r < 0x20, r == 0x7f, r >= 0x80 && r <= 0x9f:
		return true
	case r == 0x061c, r == 0x200e, r == 0x200f, r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
		return true
	case r == 0x2028, r == 0x2029:
		return true
	}
	return false
}

// CheckText checks one line of text: valid UTF-8, no control or
// bidirectional-control characters, at most max characters. The error
// names field and the rule, never the value.
func CheckText(field, s string, max int) error {
	return checkText(field, s, max, false)
}

// CheckMultiline is CheckText for text that may span lines (\n and \t allowed).
func CheckMultiline(field, s string, max int) error {
	return checkText(field, s, max, true)
}

func checkText(field, s string, max int, multiline bool) error {
	// Bytes first: a huge value is refused without being scanned.
	if len(s) > max && (len(s) > utf8.UTFMax*max || utf8.RuneCountInString(s) > max) {
		return Invalid(field, "must be at most %d characters", max)
	}
	if r, pos, bad := BadRune(s, multiline); bad {
		return Invalid(field, "%s", badRuneRule(r, pos))
	}
	return nil
}

func badRuneRule(r rune, pos int) string {
	switch {
	case r == utf8.RuneError:
		return fmt.Sprintf("must be valid UTF-8 (invalid byte at character %d)", pos+1)
	case r < 0x20 || r == 0x7f || (r >= 0x80 && r <= 0x9f):
		return fmt.Sprintf("must not contain control characters (%U at character %d)", r, pos+1)
	case r == 0x2028 || r == 0x2029:
		return fmt.Sprintf("must not contain line or paragraph separators (%U at character %d)", r, pos+1)
	}
	return fmt.Sprintf("must not contain bidirectional control characters (%U at character %d)", r, pos+1)
}

// ParseID parses an id given as field (a path, query or body parameter).
// Only the canonical form is taken: 36 characters, lowercase hex with
// hyphens (as uuid.UUID.String writes it); braces, urn:uuid:, uppercase and
// hyphenless forms are refused, so logs and audit entries name one form.
func ParseID(field, s string) (uuid.UUID, error) {
	if len(s) == 36 {
		if id, err := uuid.Parse(s); err == nil && id.String() == s {
			return id, nil
		}
	}
	return uuid.Nil, Invalid(field, "must be a canonical lowercase UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)")
}

// Email validates and normalizes (trims, lowercases) an email address:
// a bare address (no display name) of at most MaxEmailLength characters.
func Email(field, raw string) (string, error) {
	email := strings.ToLower(strings.TrimSpace(raw))
	if email == "" {
		return "", Invalid(field, "is required")
	}
	if err := CheckText(field, email, MaxEmailLength); err != nil {
		return "", err
	}
	addr, err := mail.ParseAddress(email)
	if err != nil || addr.Address != email || addr.Name != "" {
		return "", Invalid(field, "must be a valid email address")
	}
	return email, nil
}

// Name validates and trims a display name: required, one line, at most max
// characters.
func Name(field, raw string, max int) (string, error) {
	name := strings.TrimSpace(raw)
	if name == "" {
		return "", Invalid(field, "is required")
	}
	if err := CheckText(field, name, max); err != nil {
		return "", err
	}
	return name, nil
}

// DNSLabel checks an RFC 1123 label: 1-63 lowercase letters, digits and
// hyphens, not starting or ending with a hyphen.
func DNSLabel(field, s string) error {
	ok := len(s) >= 1 && len(s) <= MaxDNSLabelLength && s[0] != '-' && s[len(s)-1] != '-'
	for i := 0; ok && i < len(s); i++ {
		c := s[i]
		ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'
	}
	if !ok {
		return Invalid(field, "must be a DNS label: 1-63 lowercase letters, digits and hyphens, not starting or ending with a hyphen")
	}
	return nil
}

// MaxLabels is the most labels one object carries.
const MaxLabels = 50

// Labels checks a label set: at most MaxLabels; keys 1-63 letters, digits
// and . _ / - starting and ending with a letter or digit; values one line
// of at most MaxLabelValueLength characters. Errors name field.key.
func Labels(field string, labels map[string]string) error {
	if len(labels) > MaxLabels {
		return Invalid(field, "at most %d labels", MaxLabels)
	}
	for k, v := range labels {
		if !labelKey(k) {
			return Invalid(field, "key %q must be 1-63 letters, digits and . _ / -, starting and ending with a letter or digit", clip(k))
		}
		if err := CheckText(field+"."+k, v, MaxLabelValueLength); err != nil {
			return err
		}
	}
	return nil
}

func labelKey(k string) bool {
	if len(k) < 1 || len(k) > MaxLabelKeyLength {
		return false
	}
	alnum := func(c byte) bool { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') }
	if !alnum(k[0]) || !alnum(k[len(k)-1]) {
		return false
	}
	for i := 0; i < len(k); i++ {
		if c := k[i]; !alnum(c) && c != '.' && c != '_' && c != '/' && c != '-' {
			return false
		}
	}
	return true
}

// clip shortens a value quoted in an error message.
func clip(s string) string {
	if len(s) <= 64 {
		return s
	}
	return s[:64] + "…"
}

// Truncate cuts s to at most n bytes, on a rune boundary, and says how
// long it was ("…(1000000 bytes)"); a string within n is returned whole.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…(" + strconv.Itoa(len(s)) + " bytes)"
}
