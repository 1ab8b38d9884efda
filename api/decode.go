package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/shardform/shardform/domain"
)

// decode reads the request body into v strictly: JSON only, one value, no
// unknown fields, no trailing data, every string checked (checkBody).
// Errors name the field.
func decode(c *fiber.Ctx, v any) error {
	if ct := c.Get(fiber.HeaderContentType); ct != "" && !strings.HasPrefix(strings.ToLower(ct), fiber.MIMEApplicationJSON) {
		return &domain.ValidationError{Rule: "Content-Type must be application/json"}
	}
	body := c.Body()
	if len(bytes.TrimSpace(body)) == 0 {
		return &domain.ValidationError{Rule: "request body is required (a JSON object)"}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return &domain.ValidationError{Rule: "request body must hold a single JSON object (trailing data found)"}
	}
	return checkBody(body, reflect.TypeOf(v))
}

// checkBody walks the body's JSON beside the Go type it was decoded into and
// checks every string, map key included, by the rule of its field
// (bodyRule): one line of text (no control or bidirectional-control
// characters) of at most the field's length, or a canonical UUID for an id.
// The raw JSON is walked rather than the decoded value so that ids decoded
// into uuid.UUID (which takes any of its forms) are seen as sent.
func checkBody(body []byte, t reflect.Type) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var raw any
	if err := dec.Decode(&raw); err != nil {
		return decodeError(err)
	}
	return checkJSON("", textRule{max: domain.MaxTextLength}, t, raw)
}

// textRule is what a string field may hold.
type textRule struct {
	max       int  // characters
	multiline bool // \n and \t allowed
	id        bool // a canonical lowercase UUID
}

// bodyRule is the rule of the strings of the body field name (a JSON name,
// any case): for a map, of its values; for an array, of its items. Domain
// validation narrows these further (an organization name is at most 100
// characters, a node name a DNS label); this is the ceiling every string
// meets before any domain code sees it. The README's limits table lists it.
func bodyRule(name string) textRule {
	name = strings.ToLower(name)
	switch name {
	case "email":
		return textRule{max: domain.MaxEmailLength}
	case "password", "current_password", "new_password":
		return textRule{max: domain.MaxPasswordLength}
	case "public_key", "ssh_keys":
		// authorized_keys lines: a trailing newline is common.
		return textRule{max: domain.MaxPublicKeyLength, multiline: true}
	case "secret":
		return textRule{max: domain.MaxSecretLength}
	case "source_address", "force_source_address":
		return textRule{max: 1024}
	case "content":
		// A DNS record's content (a TXT record holds up to 2048 characters).
		return textRule{max: 2048}
	case "zone_id":
		// A Cloudflare zone id: 32 hexadecimal characters, not a UUID.
		return textRule{max: 64}
	}
	if name == "id" || strings.HasSuffix(name, "_id") {
		return textRule{max: domain.MaxTextLength, id: true}
	}
	return textRule{max: domain.MaxTextLength}
}

// checkJSON checks raw (a value of encoding/json's generic form) found at
// path, where t is the Go type it was decoded into (nil: any JSON) and rule
// the rule of its strings.
func checkJSON(path string, rule textRule, t reflect.Type, raw any) error {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == rawType || (t != nil && t.Kind() == reflect.Interface) {
		t = nil
	}
	switch v := raw.(type) {
	case string:
		if rule.id || t == uuidType {
			return checkID(path, v, idWhat(path))
		}
		if rule.multiline {
			return domain.CheckMultiline(path, v, rule.max)
		}
		return domain.CheckText(path, v, rule.max)
	case []any:
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		for i, e := range v {
			if err := checkJSON(fmt.Sprintf("%s[%d]", path, i), rule, elem, e); err != nil {
				return err
			}
		}
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		isStruct := t != nil && t.Kind() == reflect.Struct
		for _, k := range keys {
			if !isStruct {
				if err := domain.CheckText(path, k, domain.MaxTextLength); err != nil {
					var verr *domain.ValidationError
					if errors.As(err, &verr) {
						verr.Rule = "key " + verr.Rule
					}
					return err
				}
			}
			p := k
			if path != "" {
				p = path + "." + k
			}
			var err error
			switch {
			case isStruct:
				ft, name := fieldOf(t, k)
				err = checkJSON(p, bodyRule(name), ft, v[k])
			case t != nil && t.Kind() == reflect.Map:
				err = checkJSON(p, rule, t.Elem(), v[k])
			default:
				err = checkJSON(p, rule, nil, v[k])
			}
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// fieldOf is the type and JSON name of the field of struct t that
// encoding/json decodes key into (exact name first, then any case); for a
// key no tagged field takes, nil (any JSON) and the key itself.
func fieldOf(t reflect.Type, key string) (reflect.Type, string) {
	fields := jsonFields(t)
	for _, f := range fields {
		if f.name == key {
			return f.typ, f.name
		}
	}
	for _, f := range fields {
		if strings.EqualFold(f.name, key) {
			return f.typ, f.name
		}
	}
	return nil, key
}

func decodeError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return &domain.ValidationError{Rule: fmt.Sprintf("malformed JSON at byte %d: %v", syn.Offset, syn)}
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			return &domain.ValidationError{Rule: "request body must be a JSON object"}
		}
		return domain.Invalid(field, "must be %s", kindName(typ.Type))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &domain.ValidationError{Rule: "malformed JSON: unexpected end of body"}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return domain.Invalid(name, "unknown field")
	}
	return &domain.ValidationError{Rule: "malformed JSON: " + err.Error()}
}

func kindName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	}
	return "an object"
}

// pathID parses the id path parameter name, which must be a canonical
// lowercase UUID (400 naming the parameter otherwise: braces, urn:uuid:,
// uppercase and hyphenless forms included), so audit entries and logs name
// one form. It checks the query parameters too (checkQuery).
func pathID(c *fiber.Ctx, name, what string) (uuid.UUID, error) {
	id, err := domain.ParseID(name, c.Params(name))
	if err != nil {
		return uuid.Nil, checkID(name, c.Params(name), what)
	}
	if err := checkQuery(c); err != nil {
		return uuid.Nil, err
	}
	return id, nil
}

// page reads the page and limit query parameters, after checking every
// query parameter (checkQuery): every list endpoint calls it.
func page(c *fiber.Ctx) (domain.Page, error) {
	if err := checkQuery(c); err != nil {
		return domain.Page{}, err
	}
	return domain.ParsePage(c.Query("page"), c.Query("limit"))
}

// checkQuery checks every query parameter, name and value: one line of text
// (valid UTF-8, no control or bidirectional-control characters) of at most
// domain.MaxTextLength characters; an id parameter (queryIsID) a canonical
// lowercase UUID. A value that would reach Postgres with a NUL byte is 400
// here, never 500 there.
func checkQuery(c *fiber.Ctx) error {
	var err error
	c.Context().QueryArgs().VisitAll(func(k, v []byte) {
		if err != nil {
			return
		}
		name, value := string(k), string(v)
		if err = domain.CheckText("query parameter name", name, domain.MaxTextLength); err != nil {
			return
		}
		if queryIsID(name) {
			if value != "" && (name != "user" || value != "me") {
				err = checkID(name, value, idWhat(name))
			}
			return
		}
		err = domain.CheckText(name, value, domain.MaxTextLength)
	})
	return err
}

// checkID refuses an id (field) that is not a canonical lowercase UUID,
// naming what it identifies: "node_id: must be a node id: a canonical
// lowercase UUID (...)".
func checkID(field, value, what string) error {
	if _, err := domain.ParseID(field, value); err == nil {
		return nil
	}
	article := "a"
	if what != "" && strings.ContainsRune("aeio", rune(what[0])) {
		article = "an"
	}
	return domain.Invalid(field, "must be %s %s id: a canonical lowercase UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)", article, what)
}

// idWhat is what an id field identifies, from its name: node_id and node
// name a node, organization_id an organization; a bare id, an object.
func idWhat(field string) string {
	if i := strings.LastIndexAny(field, ".]"); i >= 0 {
		field = field[i+1:]
	}
	what := strings.ReplaceAll(strings.TrimSuffix(strings.ToLower(field), "_id"), "_", " ")
	if what == "" || what == "id" {
		return "object"
	}
	return what
}

// queryIsID reports whether the query parameter name holds an id: node,
// user (an id, or me), and every *_id.
func queryIsID(name string) bool {
	return name == "node" || name == "user" || name == "id" || strings.HasSuffix(name, "_id")
}

// listBody is every list answer.
type listBody struct {
	Data any      `json:"data"`
	Meta listMeta `json:"meta"`
}

type listMeta struct {
	Page  int32 `json:"page"`
	Limit int32 `json:"limit"`
	Total int64 `json:"total"`
}

func list(c *fiber.Ctx, data any, p domain.Page, total int64) error {
	return c.JSON(listBody{Data: data, Meta: listMeta{Page: p.Page, Limit: p.Limit, Total: total}})
}
