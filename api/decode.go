package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/shardform/shardform/domain"
)

// decode reads the request body into v strictly: JSON only, one value, no
// unknown fields, no trailing data. Errors name the field.
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
	return nil
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

// pathID parses a UUID path parameter; a malformed one is answered 404.
func pathID(c *fiber.Ctx, name, what string) (uuid.UUID, error) {
	id, err := uuid.Parse(c.Params(name))
	if err != nil {
		return uuid.Nil, domain.NotFound(what)
	}
	return id, nil
}

// page reads the page and limit query parameters.
func page(c *fiber.Ctx) (domain.Page, error) {
	return domain.ParsePage(c.Query("page"), c.Query("limit"))
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
