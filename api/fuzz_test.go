package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/shardform/shardform/domain"
)

// bodyTypes is every request body type of the documented operations, once.
func bodyTypes() []reflect.Type {
	var out []reflect.Type
	for _, op := range operations() {
		if op.body == nil {
			continue
		}
		if t := reflect.TypeOf(op.body); !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}

// decodeApp answers POST /{n} by decoding the body strictly into a new
// value of types[n]: 200 when it decodes and every string in it is clean,
// 400 for a validation error, and 599 with the reason for anything else (a
// decode error that is not a *domain.ValidationError, or a decoded string
// the checks should have refused).
func decodeApp(types []reflect.Type) *fiber.App {
	app := fiber.New(fiber.Config{BodyLimit: 1 << 20, DisableStartupMessage: true})
	app.Post("/:n", func(c *fiber.Ctx) error {
		n, _ := strconv.Atoi(c.Params("n"))
		v := reflect.New(types[n%len(types)])
		err := decode(c, v.Interface())
		var verr *domain.ValidationError
		switch {
		case errors.As(err, &verr):
			if status, _ := statusOf(err); status != fiber.StatusBadRequest {
				return c.Status(599).SendString(fmt.Sprintf("status %d for %v", status, err))
			}
			if len(c.Body()) > 300 && len(err.Error()) > 600 {
				return c.Status(599).SendString("the error repeats the body: " + err.Error()[:600])
			}
			return c.Status(fiber.StatusBadRequest).SendString(err.Error())
		case err != nil:
			return c.Status(599).SendString(fmt.Sprintf("not a ValidationError: %#v", err))
		}
		if reason := dirty(v.Elem(), ""); reason != "" {
			return c.Status(599).SendString(reason)
		}
		return c.SendStatus(fiber.StatusOK)
	})
	return app
}

// dirty walks a decoded value and names a string no input may hold: a
// control character other than \n and \t, a bidirectional control, a
// line or paragraph separator, or more than domain.MaxPublicKeyLength
// characters (the longest field).
func dirty(v reflect.Value, path string) string {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			return dirty(v.Elem(), path)
		}
	case reflect.String:
		s := v.String()
		if utf8.RuneCountInString(s) > domain.MaxPublicKeyLength {
			return path + ": a string of " + strconv.Itoa(len(s)) + " bytes was taken"
		}
		for _, r := range s {
			if r != '\n' && r != '\t' && unicode.In(r, unicode.Cc, unicode.Bidi_Control, unicode.Zl, unicode.Zp) {
				return fmt.Sprintf("%s: %U was taken", path, r)
			}
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				if r := dirty(v.Field(i), path+"."+v.Type().Field(i).Name); r != "" {
					return r
				}
			}
		}
	case reflect.Slice, reflect.Array:
		if v.Type() == rawType {
			var generic any
			if err := json.Unmarshal(v.Bytes(), &generic); err == nil {
				return dirty(reflect.ValueOf(&generic).Elem(), path)
			}
			return ""
		}
		for i := range v.Len() {
			if r := dirty(v.Index(i), fmt.Sprintf("%s[%d]", path, i)); r != "" {
				return r
			}
		}
	case reflect.Map:
		iter := v.MapRange()
		for iter.Next() {
			if r := dirty(iter.Key(), path+" key"); r != "" {
				return r
			}
			if r := dirty(iter.Value(), path+"."+fmt.Sprint(iter.Key())); r != "" {
				return r
			}
		}
	}
	return ""
}

// decodeSeeds are bodies for every kind of request: valid ones, and the
// inputs that once reached Postgres or the logs.
func decodeSeeds() []string {
	long := strings.Repeat("a", 300)
	return []string{
		`{"email":"alice@example.com","password":"correct horse battery"}`,
		`{"email":"a\u0000b@example.com","password":"correct horse battery"}`,
		`{"email":"` + strings.Repeat("a", 1000) + `@example.com"}`,
		`{"EMAIL":"a\u0000@example.com"}`,
		`{"name":"acme"}`, `{"name":"ac\u202Eme"}`, `{"name":"` + long + `"}`, `{"name":"a\nb"}`, `{"name":"a\u0085"}`,
		`{"name":"web-1","provider":"local","region":"local","instance_type":"local-small","labels":{"env":"prod"},"ssh_keys":["ssh-ed25519 AAAA x\n"]}`,
		`{"labels":{"env":"pr\u0000od"}}`, `{"labels":{"e\u0000nv":"prod"}}`, `{"labels":{"` + long + `":"v"}}`,
		`{"credential_id":"6ba7b810-9dad-11d1-80b4-00c04fd430c8"}`, `{"credential_id":"6BA7B810-9DAD-11D1-80B4-00C04FD430C8"}`,
		`{"credential_id":"{6ba7b810-9dad-11d1-80b4-00c04fd430c8}"}`, `{"credential_id":"urn:uuid:6ba7b810-9dad-11d1-80b4-00c04fd430c8"}`,
		`{"node_id":"6ba7b810-9dad-11d1-80b4-00c04fd430c8","name":"vh-1"}`, `{"node_id":"6BA7B810-9dad-11d1-80b4-00c04fd430c8"}`,
		`{"public_key":"ssh-ed25519 AAAA\n","principals":["deploy"],"validity_hours":8}`, `{"public_key":"ssh-ed25519 AAAA\u0000"}`,
		`{"secret":{"token":"abc\u0000"},"name":"n","provider":"hetzner"}`,
		`{"max_monthly_price":{"amount":"5\u0000","currency":"EUR"},"cpu":1}`, `{"max_monthly_price":"` + long + `"}`,
		`{"allowed_principals":["a\u202E"],"force_source_address":"10.0.0.0/8"}`,
		`{"need":{"cpu":1}}`, `{"name":1}`, `{"name":null}`, `{"labels":[]}`, `{"ssh_keys":"x"}`, `[]`, `"x"`, `null`, `{}`, ``, `{`, `{"name":"a"} {}`,
		`{"unknown":1}`, `{"name":"\ud800"}`, `{"name":"` + "\xff\xfe" + `"}`, `{"count":1e400}`, `{"count":99999999999999999999}`,
		strings.Repeat(`{"max_monthly_price":`, 200) + `1` + strings.Repeat(`}`, 200),
		strings.Repeat(`[`, 20000) + strings.Repeat(`]`, 20000),
	}
}

// FuzzDecode feeds the strict decoder every body type with arbitrary
// bytes: it never panics, refuses with a *domain.ValidationError (400), and
// whatever it takes holds no control or bidirectional-control character.
// The seed corpus runs in every `go test`; `go test -fuzz FuzzDecode ./api/`
// explores further (no database needed).
func FuzzDecode(f *testing.F) {
	types := bodyTypes()
	if len(types) < 10 {
		f.Fatalf("only %d body types in the operations table", len(types))
	}
	for _, s := range decodeSeeds() {
		for n := range types {
			f.Add(uint8(n), []byte(s))
		}
	}
	app := decodeApp(types)
	f.Fuzz(func(t *testing.T, n uint8, body []byte) {
		hr := httptest.NewRequest("POST", "/"+strconv.Itoa(int(n)), bytes.NewReader(body))
		hr.Header.Set("Content-Type", "application/json")
		resp, err := app.Test(hr, -1)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != fiber.StatusOK && resp.StatusCode != fiber.StatusBadRequest {
			t.Fatalf("%s (body %.200q): %d %s", types[int(n)%len(types)], body, resp.StatusCode, raw)
		}
	})
}

// TestCheckBodyRules pins the rules of the body walk: the path named, the
// map keys, the ids decoded into uuid.UUID, the multi-line fields.
func TestCheckBodyRules(t *testing.T) {
	t.Parallel()
	type inner struct {
		Name string `json:"name"`
	}
	type body struct {
		Email        string            `json:"email"`
		Name         string            `json:"name"`
		Labels       map[string]string `json:"labels"`
		SSHKeys      []string          `json:"ssh_keys"`
		PublicKey    string            `json:"public_key"`
		CredentialID *string           `json:"credential_id"`
		Items        []inner           `json:"items"`
		Any          json.RawMessage   `json:"any"`
		Secret       map[string]string `json:"secret"`
	}
	tests := []struct {
		body, field, rule string // field "" when accepted
	}{
		{`{"email":"a@b.c","name":"x","labels":{"k":"v"},"ssh_keys":["k\n"],"public_key":"k\n","items":[{"name":"y"}],"any":{"a":["b"]}}`, "", ""},
		{`{"email":"` + strings.Repeat("a", 255) + `"}`, "email", "at most 254 characters"},
		{`{"name":"` + strings.Repeat("a", 256) + `"}`, "name", "at most 255 characters"},
		{`{"NAME":"a\u0000"}`, "NAME", "control characters (U+0000 at character 2)"},
		{`{"labels":{"env":"a\u202Eb"}}`, "labels.env", "bidirectional control characters (U+202E at character 2)"},
		{`{"labels":{"e\u0000":"v"}}`, "labels", "key must not contain control characters"},
		{`{"ssh_keys":["ok\n","bad\u0000"]}`, "ssh_keys[1]", "control characters"},
		{`{"ssh_keys":["` + strings.Repeat("k", domain.MaxPublicKeyLength) + `"]}`, "", ""},
		{`{"public_key":"a\rb"}`, "public_key", "control characters (U+000D"},
		{`{"name":"a\nb"}`, "name", "control characters (U+000A"},
		{`{"items":[{"name":"ok"},{"name":"\u2028"}]}`, "items[1].name", "line or paragraph separators"},
		{`{"any":{"deep":[{"x":"\u0000"}]}}`, "any.deep[0].x", "control characters"},
		{`{"credential_id":"6BA7B810-9DAD-11D1-80B4-00C04FD430C8"}`, "credential_id", "canonical lowercase UUID"},
		{`{"credential_id":"6ba7b810-9dad-11d1-80b4-00c04fd430c8"}`, "", ""},
		{`{"secret":{"token":"` + strings.Repeat("s", domain.MaxSecretLength) + `"}}`, "", ""},
		{`{"secret":{"token":"` + strings.Repeat("s", domain.MaxSecretLength+1) + `"}}`, "secret.token", "at most 4096 characters"},
	}
	for _, tt := range tests {
		var raw any
		if err := json.Unmarshal([]byte(tt.body), &raw); err != nil {
			t.Fatalf("%s: %v", tt.body, err)
		}
		err := checkJSON("", bodyRule(""), reflect.TypeFor[body](), raw)
		if tt.field == "" {
			if err != nil {
				t.Errorf("%.80s: %v", tt.body, err)
			}
			continue
		}
		var verr *domain.ValidationError
		if !errors.As(err, &verr) || verr.Field != tt.field || !strings.Contains(verr.Rule, tt.rule) {
			t.Errorf("%.80s: err = %v, want %s: ...%s", tt.body, err, tt.field, tt.rule)
		}
	}
	// A uuid.UUID field takes only the canonical form although uuid.Parse takes others.
	type withUUID struct {
		ID *uuid.UUID `json:"credential"`
	}
	var raw any
	_ = json.Unmarshal([]byte(`{"credential":"urn:uuid:6ba7b810-9dad-11d1-80b4-00c04fd430c8"}`), &raw)
	if err := checkJSON("", bodyRule(""), reflect.TypeFor[withUUID](), raw); err == nil || !strings.Contains(err.Error(), "credential: must be a credential id: a canonical lowercase UUID") {
		t.Errorf("urn:uuid: form in a uuid.UUID field: %v", err)
	}
}
