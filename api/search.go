package api

import (
	"context"
	"fmt"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/gofiber/fiber/v2"

	"github.com/shardform/shardform/audit"
	"github.com/shardform/shardform/credentials"
	"github.com/shardform/shardform/dns"
	"github.com/shardform/shardform/domain"
	"github.com/shardform/shardform/placement"
	"github.com/shardform/shardform/provision"
	"github.com/shardform/shardform/search"
	"github.com/shardform/shardform/sshsign"
)

// Searcher runs POST /v1/{resource}/search (search.Service).
type Searcher interface {
	Resources() []*search.Resource
	Search(ctx context.Context, p *domain.Principal, resource string, b search.Body) (search.Result, error)
}

// searchRoutes registers one search route per resource the searcher
// serves, before the resources' own routes (POST .../search is no id).
func (s *Server) searchRoutes(v1 fiber.Router) {
	for _, r := range s.cfg.Search.Resources() {
		v1.Post("/"+r.Name+"/search", s.authenticate, s.search(r.Name))
	}
}

func (s *Server) search(resource string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		readOnly(c) // a search changes nothing: not audited
		if err := checkQuery(c); err != nil {
			return err
		}
		var b search.Body
		if err := decode(c, &b); err != nil {
			return err
		}
		res, err := s.cfg.Search.Search(c.UserContext(), principal(c), resource, b)
		if err != nil {
			return err
		}
		return list(c, res.Data, res.Page, res.Total)
	}
}

// searchAnswers are the row types of each searchable resource: what its
// GET endpoint answers.
func searchAnswers() map[string]any {
	return map[string]any{
		"provision": provision.Request{}, "nodes": provision.Node{}, "instances": placement.Instance{},
		"credentials": credentials.Credential{}, "ssh/certificates": sshsign.Certificate{},
		"dns/records": dns.Record{}, "admin/audit-logs": audit.Entry{},
	}
}

// searchOperations documents every search route.
func searchOperations() []operation {
	answers := searchAnswers()
	var ops []operation
	for _, r := range search.Resources() {
		perm := r.Perm
		desc := "Filters are exact (any of a field's values; every field), search is a case-insensitive substring (any of a field's substrings), " +
			"greaterThan and lessThan compare numbers and RFC 3339 timestamps. An unknown field is 400 naming it. " +
			"Each row is what the resource's GET answers"
		if len(r.Extends) > 0 {
			desc += ", with each extend as an extra key (an object or null, or a list): " + strings.Join(r.Extends, ", ")
		}
		desc += "."
		if r.Kind == search.KindCertificate {
			desc += " With ssh:sign only, only the caller's own certificates; ssh:admin sees the organization's."
		}
		ops = append(ops, operation{method: "POST", path: "/v1/" + r.Name + "/search", summary: "Search " + strings.ReplaceAll(r.Name, "/", " ") + ": filters, search, ranges, sort, extend",
			description: desc, access: authenticated, perm: perm, search: r, resp: answers[r.Name], list: true, status: 200})
	}
	return ops
}

// searchBodySchema is the request body of r's search: every allowed field,
// sort field and extend named.
func searchBodySchema(r *search.Resource) *openapi3.SchemaRef {
	obj := func(props openapi3.Schemas, desc string) *openapi3.SchemaRef {
		s := &openapi3.Schema{Type: &openapi3.Types{"object"}, Properties: props, Description: desc,
			AdditionalProperties: openapi3.AdditionalProperties{Has: new(false)}}
		return openapi3.NewSchemaRef("", s)
	}
	filters, searches, greater, less := openapi3.Schemas{}, openapi3.Schemas{}, openapi3.Schemas{}, openapi3.Schemas{}
	var sorts []any
	for _, f := range r.Fields {
		filters[f.Name] = openapi3.NewSchemaRef("", openapi3.NewArraySchema().WithItems(fieldSchema(f)).WithMinItems(1).WithMaxItems(search.MaxValues))
		if f.Search {
			searches[f.Name] = openapi3.NewSchemaRef("", openapi3.NewArraySchema().
				WithItems(openapi3.NewStringSchema().WithMinLength(1).WithMaxLength(domain.MaxTextLength)).WithMinItems(1).WithMaxItems(search.MaxValues))
		}
		if search.Rangeable(f) {
			greater[f.Name] = openapi3.NewSchemaRef("", fieldSchema(f))
			less[f.Name] = openapi3.NewSchemaRef("", fieldSchema(f))
		}
		if f.Sort {
			sorts = append(sorts, f.Name)
		}
	}
	extends := make([]any, len(r.Extends))
	for i, e := range r.Extends {
		extends[i] = e
	}
	extendItems := openapi3.NewStringSchema()
	if len(extends) > 0 {
		extendItems = extendItems.WithEnum(extends...)
	} else {
		extendItems.Description = "This resource has no extends."
		extendItems = extendItems.WithMaxLength(0)
	}
	dir := "asc"
	if r.DefaultDesc {
		dir = "desc"
	}
	props := openapi3.Schemas{
		"filters":       obj(filters, "Exact matches: a row matches any of a field's values, and every field."),
		"search":        obj(searches, "Case-insensitive substrings: a row matches any of a field's substrings, and every field."),
		"greaterThan":   obj(greater, "Strictly greater than (numbers, RFC 3339 timestamps)."),
		"lessThan":      obj(less, "Strictly less than (numbers, RFC 3339 timestamps)."),
		"sortBy":        openapi3.NewSchemaRef("", openapi3.NewStringSchema().WithEnum(sorts...).WithDefault(r.DefaultSort)),
		"sortDirection": openapi3.NewSchemaRef("", openapi3.NewStringSchema().WithEnum("asc", "desc").WithDefault(dir)),
		"page":          openapi3.NewSchemaRef("", openapi3.NewIntegerSchema().WithMin(1).WithMax(1_000_000).WithDefault(1)),
		"limit":         openapi3.NewSchemaRef("", openapi3.NewIntegerSchema().WithMin(1).WithMax(domain.MaxLimit).WithDefault(domain.DefaultLimit)),
		"extend":        openapi3.NewSchemaRef("", openapi3.NewArraySchema().WithItems(extendItems)),
	}
	return obj(props, fmt.Sprintf("A search of %s.", r.Name))
}

// fieldSchema is the schema of one value of f.
func fieldSchema(f search.Field) *openapi3.Schema {
	switch f.Type {
	case search.UUID:
		return openapi3.NewUUIDSchema()
	case search.Enum:
		vals := make([]any, len(f.Values))
		for i, v := range f.Values {
			vals[i] = v
		}
		return openapi3.NewStringSchema().WithEnum(vals...)
	case search.Int:
		return openapi3.NewInt64Schema()
	case search.Timestamp:
		return openapi3.NewDateTimeSchema()
	case search.Bool:
		return openapi3.NewBoolSchema()
	case search.Labels:
		s := openapi3.NewStringSchema().WithPattern("^[^=]+=.*$").WithMaxLength(domain.MaxTextLength)
		s.Description = "key=value: the labels hold that pair."
		return s
	}
	return openapi3.NewStringSchema().WithMaxLength(domain.MaxTextLength)
}

// operations is every documented route: the table and the search routes.
func operations() []operation {
	return append(baseOperations(), searchOperations()...)
}
