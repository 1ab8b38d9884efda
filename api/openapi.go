package api

import (
	"context"
	"encoding"
	"encoding/json"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3gen"
	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"
	yaml "go.yaml.in/yaml/v4"

	"github.com/shardform/shardform/domain"
	"github.com/shardform/shardform/planner"
	"github.com/shardform/shardform/search"
	"github.com/shardform/shardform/sshca"
)

// The OpenAPI document is generated from the operations table (openapi_ops.go)
// and the Go types the handlers decode and encode, so a field added to a
// request or an answer is in the document without anyone remembering to
// write it there. A test walks Fiber's route table against the operations
// table, and every API test validates the answers it gets against the
// document.

// access says who may call an operation.
type access int

const (
	public        access = iota // no credential
	authenticated               // a session (JWT) or an API token
	sessionOnly                 // a session: API tokens are refused (403)
	platformAdmin               // a session of a platform administrator
	stateClient                 // Terraform's http backend: a run's credential, or a user's API token (HTTP Basic password, bearer or X-API-Key)
	registration                // a node's registration token (bearer shardform_reg_...)
	agentToken                  // a node's agent token (X-Agent-Token)
)

// operation documents one route.
type operation struct {
	method, path string // path as Fiber has it: /v1/nodes/:id
	summary      string
	description  string
	access       access
	perm         domain.Permission // the permission the caller needs in the organization, if any
	body         any               // request body (a value of its Go type), nil for none
	optionalBody bool              // the body may be left out
	resp         any               // answer body (a value of its Go type), nil for none
	status       int               // the success status
	also         []int             // other success statuses answered with the same body
	list         bool              // resp is one element of a list answer {data, meta}
	paged        bool              // page and limit query parameters
	query        []queryParam
	produces     string           // content type of an answer that is not a JSON body of resp's type
	stream       bool             // the answer may also be a Server-Sent Events stream
	errors       []int            // error statuses beyond those implied by access, body and path
	search       *search.Resource // a search route: its body is the resource's search body
}

type queryParam struct {
	name, description string
	kind              string // "string" (default), "integer", "boolean", "uuid"
	enum              []string
}

func (op operation) key() string { return op.method + " " + op.path }

// openAPIPath turns Fiber's /v1/nodes/:id into OpenAPI's /v1/nodes/{id}.
func openAPIPath(fiberPath string) string {
	parts := strings.Split(fiberPath, "/")
	for i, p := range parts {
		if strings.HasPrefix(p, ":") {
			parts[i] = "{" + strings.TrimSuffix(strings.TrimPrefix(p, ":"), "?") + "}"
		}
	}
	return strings.Join(parts, "/")
}

func pathParams(fiberPath string) []string {
	var out []string
	for _, p := range strings.Split(fiberPath, "/") {
		if strings.HasPrefix(p, ":") {
			out = append(out, strings.TrimPrefix(p, ":"))
		}
	}
	return out
}

// stringPathParams are path parameters that are not ids.
var stringPathParams = map[string]string{"token": "An invite token (sfi_...).", "asset": "A file name.",
	"name": "A custom state's name (a DNS label).", "n": "A state version number (1 or more).",
	"zone_id": "A Cloudflare zone id (32 hexadecimal characters)."}

var (
	uuidType     = reflect.TypeFor[uuid.UUID]()
	nullUUIDType = reflect.TypeFor[uuid.NullUUID]()
	durationType = reflect.TypeFor[time.Duration]()
	addrType     = reflect.TypeFor[netip.Addr]()
	prefixType   = reflect.TypeFor[netip.Prefix]()
	rawType      = reflect.TypeFor[json.RawMessage]()
)

// openAPIDocument builds the document for the operations the server serves.
func openAPIDocument(version string, ops []operation) (*openapi3.T, error) {
	doc := &openapi3.T{
		OpenAPI: "3.1.0",
		Info: &openapi3.Info{
			Title:   "shardform API",
			Version: version,
			Description: "Infrastructure automation for teams that run their own fleets: provisioning through Terraform, " +
				"nodes, instances, a capacity planner and an SSH certificate authority. Every error is `{\"error\": \"...\"}`; " +
				"lists take `page` and `limit` and answer `{data, meta: {page, limit, total}}`. The organization of a request is " +
				"`X-Organization-ID`, else the caller's first organization; another organization's objects are 404.",
			License: &openapi3.License{Name: "shardform"},
		},
		Servers: openapi3.Servers{{URL: "/", Description: "this server"}},
		Paths:   openapi3.NewPaths(),
		Components: &openapi3.Components{
			Schemas:         openapi3.Schemas{},
			Responses:       openapi3.ResponseBodies{},
			Parameters:      openapi3.ParametersMap{},
			SecuritySchemes: openapi3.SecuritySchemes{},
		},
	}
	c := doc.Components
	c.SecuritySchemes["bearerJWT"] = &openapi3.SecuritySchemeRef{Value: &openapi3.SecurityScheme{
		Type: "http", Scheme: "bearer", BearerFormat: "JWT",
		Description: "An access token from POST /v1/auth/login (15 minutes; renew with POST /v1/auth/refresh).",
	}}
	c.SecuritySchemes["apiToken"] = &openapi3.SecuritySchemeRef{Value: &openapi3.SecurityScheme{
		Type: "http", Scheme: "bearer", BearerFormat: "shardform_api_...",
		Description: "An API token from POST /v1/api-tokens, limited to its scopes in the organization it was made in.",
	}}
	c.SecuritySchemes["apiKey"] = &openapi3.SecuritySchemeRef{Value: &openapi3.SecurityScheme{
		Type: "apiKey", In: "header", Name: headerAPIKey, Description: "An API token in the X-API-Key header.",
	}}
	c.SecuritySchemes["stateBasic"] = &openapi3.SecuritySchemeRef{Value: &openapi3.SecurityScheme{
		Type: "http", Scheme: "basic",
		Description: "Terraform's http backend (TF_HTTP_USERNAME / TF_HTTP_PASSWORD): the password is a run's credential (shardform_run_..., minted by the worker for one run) or an API token (any username).",
	}}
	c.SecuritySchemes["registrationToken"] = &openapi3.SecuritySchemeRef{Value: &openapi3.SecurityScheme{
		Type: "http", Scheme: "bearer", BearerFormat: "shardform_reg_...",
		Description: "A node registration token from POST /v1/nodes/register-token (single use by default, short-lived).",
	}}
	c.SecuritySchemes["agentToken"] = &openapi3.SecuritySchemeRef{Value: &openapi3.SecurityScheme{
		Type: "apiKey", In: "header", Name: headerAgentToken,
		Description: "A node's agent token (shardform_agent_...) from POST /v1/agent/register: it opens only the /v1/agent routes, for its own node.",
	}}
	c.Schemas["Error"] = openapi3.NewSchemaRef("", &openapi3.Schema{
		Type:       &openapi3.Types{"object"},
		Required:   []string{"error"},
		Properties: openapi3.Schemas{"error": openapi3.NewSchemaRef("", openapi3.NewStringSchema().WithMinLength(1))},
	})
	c.Schemas["ListMeta"] = openapi3.NewSchemaRef("", &openapi3.Schema{
		Type:     &openapi3.Types{"object"},
		Required: []string{"page", "limit", "total"},
		Properties: openapi3.Schemas{
			"page":  openapi3.NewSchemaRef("", openapi3.NewInt32Schema().WithMin(1)),
			"limit": openapi3.NewSchemaRef("", openapi3.NewInt32Schema().WithMin(1).WithMax(100)),
			"total": openapi3.NewSchemaRef("", openapi3.NewInt64Schema().WithMin(0)),
		},
	})
	for code, text := range errorStatuses {
		c.Responses[strconv.Itoa(code)] = &openapi3.ResponseRef{Value: openapi3.NewResponse().
			WithDescription(text).WithJSONSchemaRef(openapi3.NewSchemaRef("#/components/schemas/Error", c.Schemas["Error"].Value))}
	}
	c.Parameters["OrganizationID"] = &openapi3.ParameterRef{Value: &openapi3.Parameter{
		Name: headerOrgID, In: "header",
		Description: "The organization the request acts in (default: the caller's first organization). A canonical lowercase UUID.",
		Schema:      openapi3.NewSchemaRef("", openapi3.NewUUIDSchema()),
	}}
	c.Parameters["page"] = &openapi3.ParameterRef{Value: &openapi3.Parameter{
		Name: "page", In: "query", Description: "Page number, from 1.",
		Schema: openapi3.NewSchemaRef("", openapi3.NewIntegerSchema().WithMin(1).WithDefault(1)),
	}}
	c.Parameters["limit"] = &openapi3.ParameterRef{Value: &openapi3.Parameter{
		Name: "limit", In: "query", Description: "Items per page.",
		Schema: openapi3.NewSchemaRef("", openapi3.NewIntegerSchema().WithMin(1).WithMax(100).WithDefault(20)),
	}}

	g := &schemaGen{schemas: c.Schemas, params: c.Parameters, responses: c.Responses}
	for _, op := range ops {
		o, err := g.operation(op)
		if err != nil {
			return nil, fmt.Errorf("openapi: %s: %w", op.key(), err)
		}
		doc.AddOperation(openAPIPath(op.path), op.method, o)
	}
	seen := map[*openapi3.Schema]bool{}
	for _, s := range c.Schemas {
		toOpenAPI31(s, seen)
	}
	for _, item := range doc.Paths.Map() {
		for _, o := range item.Operations() {
			if o.RequestBody != nil {
				for _, mt := range o.RequestBody.Value.Content {
					toOpenAPI31(mt.Schema, seen)
				}
			}
			for _, r := range o.Responses.Map() {
				for _, mt := range r.Value.Content {
					toOpenAPI31(mt.Schema, seen)
				}
			}
		}
	}
	return doc, nil
}

var errorStatuses = map[int]string{
	400: "Bad input: the message names the field and the rule.",
	401: "Missing, invalid, expired or revoked credential.",
	403: "Authenticated but not allowed (missing permission; API token on account management).",
	404: "Not found, or it belongs to an organization you are not a member of.",
	409: "Conflicts with the current state.",
	413: "The body is larger than 1 MiB.",
	422: "Well-formed but cannot be carried out.",
	423: "The Terraform state is locked: the body is the holder's LockInfo, as Terraform's http backend expects (not an {\"error\"} object).",
	429: "Rate limited or locked out (see Retry-After).",
	500: "Internal error (logged with the request id).",
	503: "A service this call needs is unavailable.",
}

type schemaGen struct {
	schemas   openapi3.Schemas
	params    openapi3.ParametersMap
	responses openapi3.ResponseBodies
}

func (g *schemaGen) param(name string) *openapi3.ParameterRef {
	return &openapi3.ParameterRef{Ref: "#/components/parameters/" + name, Value: g.params[name].Value}
}

func (g *schemaGen) operation(op operation) (*openapi3.Operation, error) {
	o := &openapi3.Operation{
		OperationID: operationID(op),
		Summary:     op.summary,
		Description: op.description,
		Tags:        []string{tagOf(op.path)},
		Responses:   openapi3.NewResponses(),
	}
	security := openapi3.SecurityRequirements{}
	var notes []string
	switch op.access {
	case public:
		o.Security = &security
	case authenticated:
		security = append(security, openapi3.SecurityRequirement{"bearerJWT": {}}, openapi3.SecurityRequirement{"apiToken": {}}, openapi3.SecurityRequirement{"apiKey": {}})
		o.Security = &security
	case sessionOnly:
		security = append(security, openapi3.SecurityRequirement{"bearerJWT": {}})
		o.Security = &security
		notes = append(notes, "Needs a session: API tokens are refused (403).")
	case platformAdmin:
		security = append(security, openapi3.SecurityRequirement{"bearerJWT": {}})
		o.Security = &security
		notes = append(notes, "Platform administrators only.")
	case stateClient:
		security = append(security, openapi3.SecurityRequirement{"stateBasic": {}}, openapi3.SecurityRequirement{"apiToken": {}}, openapi3.SecurityRequirement{"apiKey": {}}, openapi3.SecurityRequirement{"bearerJWT": {}})
		o.Security = &security
	case registration:
		security = append(security, openapi3.SecurityRequirement{"registrationToken": {}})
		o.Security = &security
	case agentToken:
		security = append(security, openapi3.SecurityRequirement{"agentToken": {}})
		o.Security = &security
		notes = append(notes, "For nodes: the agent token of the node (X-Agent-Token).")
	}
	if op.perm != "" {
		notes = append(notes, fmt.Sprintf("Permission: `%s`.", op.perm))
		o.Extensions = map[string]any{"x-permission": string(op.perm)}
	}
	if len(notes) > 0 {
		o.Description = strings.TrimSpace(strings.Join(notes, " ") + "\n\n" + o.Description)
	}

	errs := slices.Clone(op.errors)
	switch op.access {
	case public:
	case registration, agentToken:
		// The token names the organization: no X-Organization-ID.
		errs = append(errs, 401)
	default:
		o.Parameters = append(o.Parameters, g.param("OrganizationID"))
		// A malformed X-Organization-ID is 400; one the caller is not a
		// member of is 404.
		errs = append(errs, 400, 401, 403, 404)
	}
	for _, name := range pathParams(op.path) {
		schema := openapi3.NewUUIDSchema()
		desc := "A canonical lowercase UUID."
		if d, ok := stringPathParams[name]; ok {
			schema, desc = openapi3.NewStringSchema().WithMaxLength(255), d
		} else if name == "permission" {
			schema, desc = openapi3.NewStringSchema().WithEnum(permissionEnum()...), "A permission of the catalog (GET /v1/permissions)."
		}
		o.Parameters = append(o.Parameters, &openapi3.ParameterRef{Value: &openapi3.Parameter{
			Name: name, In: "path", Required: true, Description: desc, Schema: openapi3.NewSchemaRef("", schema),
		}})
		errs = append(errs, 400, 404)
	}
	if op.paged {
		o.Parameters = append(o.Parameters, g.param("page"), g.param("limit"))
		errs = append(errs, 400)
	}
	for _, q := range op.query {
		var s *openapi3.Schema
		switch q.kind {
		case "integer":
			s = openapi3.NewIntegerSchema()
		case "boolean":
			s = openapi3.NewBoolSchema()
		case "uuid":
			s = openapi3.NewUUIDSchema()
		default:
			s = openapi3.NewStringSchema().WithMaxLength(255)
		}
		if len(q.enum) > 0 {
			vals := make([]any, len(q.enum))
			for i, v := range q.enum {
				vals[i] = v
			}
			s = s.WithEnum(vals...)
		}
		o.Parameters = append(o.Parameters, &openapi3.ParameterRef{Value: &openapi3.Parameter{
			Name: q.name, In: "query", Description: q.description, Schema: openapi3.NewSchemaRef("", s),
		}})
		errs = append(errs, 400)
	}
	if op.search != nil {
		o.RequestBody = &openapi3.RequestBodyRef{Value: &openapi3.RequestBody{
			Required: true, Content: openapi3.NewContentWithJSONSchemaRef(searchBodySchema(op.search)),
		}}
		errs = append(errs, 400, 413)
	}
	if op.body != nil {
		s, err := g.schema(reflect.TypeOf(op.body), true)
		if err != nil {
			return nil, err
		}
		o.RequestBody = &openapi3.RequestBodyRef{Value: &openapi3.RequestBody{
			Required: !op.optionalBody,
			Content:  openapi3.NewContentWithJSONSchemaRef(s),
		}}
		errs = append(errs, 400, 413)
	}
	if strings.HasPrefix(op.path, "/v1/") {
		errs = append(errs, 429)
	}
	errs = append(errs, 500)

	ok := openapi3.NewResponse().WithDescription(http200Text(op.status))
	switch {
	case op.produces == fiber.MIMEApplicationJSON || op.produces == "application/yaml":
		ok.Content = openapi3.Content{op.produces: &openapi3.MediaType{Schema: openapi3.NewSchemaRef("", openapi3.NewObjectSchema())}}
	case op.produces != "":
		ok.Content = openapi3.Content{op.produces: &openapi3.MediaType{Schema: openapi3.NewSchemaRef("", openapi3.NewStringSchema())}}
	case op.resp != nil:
		s, err := g.schema(reflect.TypeOf(op.resp), false)
		if err != nil {
			return nil, err
		}
		if op.list {
			s = openapi3.NewSchemaRef("", &openapi3.Schema{
				Type:     &openapi3.Types{"object"},
				Required: []string{"data", "meta"},
				Properties: openapi3.Schemas{
					"data": openapi3.NewSchemaRef("", &openapi3.Schema{Type: &openapi3.Types{"array"}, Items: s}),
					"meta": openapi3.NewSchemaRef("#/components/schemas/ListMeta", g.schemas["ListMeta"].Value),
				},
			})
		}
		ok.Content = openapi3.NewContentWithJSONSchemaRef(s)
		if op.stream {
			ok.Content["text/event-stream"] = &openapi3.MediaType{Schema: openapi3.NewSchemaRef("", openapi3.NewStringSchema())}
		}
	}
	for _, st := range append([]int{op.status}, op.also...) {
		o.Responses.Set(strconv.Itoa(st), &openapi3.ResponseRef{Value: ok})
	}
	slices.Sort(errs)
	for _, code := range slices.Compact(errs) {
		o.Responses.Set(strconv.Itoa(code), &openapi3.ResponseRef{Ref: "#/components/responses/" + strconv.Itoa(code), Value: g.responses[strconv.Itoa(code)].Value})
	}
	return o, nil
}

func http200Text(status int) string {
	switch status {
	case 201:
		return "Created."
	case 202:
		return "Accepted: the work is queued."
	case 204:
		return "Done; no body."
	}
	return "OK."
}

func permissionEnum() []any {
	var out []any
	for _, p := range domain.Catalog() {
		out = append(out, string(p.Key))
	}
	return out
}

func operationID(op operation) string {
	var b strings.Builder
	b.WriteString(strings.ToLower(op.method))
	for _, part := range strings.Split(strings.TrimPrefix(op.path, "/v1"), "/") {
		if part == "" {
			continue
		}
		by := strings.HasPrefix(part, ":")
		part = strings.TrimPrefix(part, ":")
		if by {
			b.WriteString("By")
		}
		for _, w := range strings.FieldsFunc(part, func(r rune) bool { return r == '-' || r == '_' || r == '.' }) {
			b.WriteString(strings.ToUpper(w[:1]) + w[1:])
		}
	}
	return b.String()
}

func tagOf(path string) string {
	rest := strings.TrimPrefix(path, "/v1/")
	if rest == path {
		return "health"
	}
	first, _, _ := strings.Cut(rest, "/")
	switch first {
	case "whoami":
		return "users"
	case "invites", "permissions":
		return "organizations"
	case "admin":
		return "audit"
	case "nodes":
		return "nodes"
	}
	return first
}

// schema is the schema of t: for answers, named component schemas and
// required fields (those always present); for request bodies, inline, with
// the limits the strict decoder enforces.
func (g *schemaGen) schema(t reflect.Type, request bool) (*openapi3.SchemaRef, error) {
	opts := []openapi3gen.Option{openapi3gen.SchemaCustomizer(customizeSchema(request))}
	if !request {
		opts = append(opts, openapi3gen.CreateComponentSchemas(openapi3gen.ExportComponentSchemasOptions{
			ExportComponentSchemas: true, ExportTopLevelSchema: true,
		}), openapi3gen.CreateTypeNameGenerator(schemaName))
	}
	gen := openapi3gen.NewGenerator(opts...)
	ref, err := gen.GenerateSchemaRef(t)
	if err != nil {
		return nil, err
	}
	if !request {
		for r := range gen.SchemaRefs {
			g.collect(r)
		}
		g.collect(ref)
	}
	return ref, nil
}

// collect files the component schemas a generated tree refers to.
func (g *schemaGen) collect(ref *openapi3.SchemaRef) {
	if ref == nil || ref.Value == nil {
		return
	}
	if overriddenName(ref.Ref) {
		// A self-encoding type's schema stays inline. openapi3gen answers a
		// struct type's second use with a bare reference to its first (an
		// empty schema here): fill it in from the override.
		if ref.Value.IsEmpty() {
			for t, f := range schemaOverrides {
				if ref.Ref == "#/components/schemas/"+schemaName(t) {
					v := f()
					v.Nullable = ref.Value.Nullable
					ref.Value = &v
				}
			}
		}
		ref.Ref = ""
		return
	}
	if name, ok := strings.CutPrefix(ref.Ref, "#/components/schemas/"); ok {
		if _, done := g.schemas[name]; done {
			return
		}
		g.schemas[name] = openapi3.NewSchemaRef("", ref.Value)
	}
	for _, p := range ref.Value.Properties {
		g.collect(p)
	}
	g.collect(ref.Value.Items)
	g.collect(ref.Value.AdditionalProperties.Schema)
	for _, s := range ref.Value.AllOf {
		g.collect(s)
	}
}

// schemaName names a component after its package and type: provision.Request
// becomes ProvisionRequest; api's own answer types drop their package.
func schemaName(t reflect.Type) string {
	name := t.Name()
	if i := strings.IndexByte(name, '['); i >= 0 {
		name = name[:i]
	}
	pkg := t.PkgPath()
	pkg = pkg[strings.LastIndexByte(pkg, '/')+1:]
	if pkg == "api" || pkg == "" {
		return strings.ToUpper(name[:1]) + name[1:]
	}
	if strings.HasPrefix(strings.ToLower(name), pkg) {
		return name
	}
	return strings.ToUpper(pkg[:1]) + pkg[1:] + name
}

// schemaOverrides are the schemas of types that encode themselves
// (MarshalJSON or MarshalText): reflection cannot see what they write.
var schemaOverrides = map[reflect.Type]func() openapi3.Schema{
	uuidType: func() openapi3.Schema { return openapi3.Schema{Type: &openapi3.Types{"string"}, Format: "uuid"} },
	nullUUIDType: func() openapi3.Schema {
		return openapi3.Schema{Type: &openapi3.Types{"string", "null"}, Format: "uuid"}
	},
	addrType: func() openapi3.Schema {
		return openapi3.Schema{Type: &openapi3.Types{"string"}, Description: "An IP address."}
	},
	prefixType: func() openapi3.Schema {
		return openapi3.Schema{Type: &openapi3.Types{"string"}, Description: "An IP prefix (CIDR)."}
	},
	rawType: func() openapi3.Schema { return openapi3.Schema{Description: "Any JSON value."} },
	reflect.TypeFor[planner.Money](): func() openapi3.Schema {
		return openapi3.Schema{
			Type: &openapi3.Types{"object"}, Required: []string{"amount", "currency"},
			Description: "An exact amount of money: a decimal string, never a JSON number.",
			Properties: openapi3.Schemas{
				"amount":   openapi3.NewSchemaRef("", openapi3.NewStringSchema().WithPattern(`^-?[0-9]+(\.[0-9]+)?$`)),
				"currency": openapi3.NewSchemaRef("", openapi3.NewStringSchema().WithPattern(`^([A-Z]{3})?$`)),
			},
		}
	},
	reflect.TypeFor[planner.RejectReasons](): func() openapi3.Schema {
		var codes []any
		for r := planner.RejectReasons(1); r != 0; r <<= 1 {
			if c := r.Codes(); len(c) == 1 && c[0] != "unknown" {
				codes = append(codes, c[0])
			}
		}
		return openapi3.Schema{Type: &openapi3.Types{"array"}, Items: openapi3.NewSchemaRef("", openapi3.NewStringSchema().WithEnum(codes...))}
	},
}

var (
	jsonMarshalerType = reflect.TypeFor[json.Marshaler]()
	textMarshalerType = reflect.TypeFor[encoding.TextMarshaler]()
	timeType          = reflect.TypeFor[time.Time]()
)

func overridden(t reflect.Type) bool {
	_, ok := schemaOverrides[t]
	return ok
}

func customizeSchema(request bool) openapi3gen.SchemaCustomizerFn {
	return func(name string, t reflect.Type, tag reflect.StructTag, s *openapi3.Schema) error {
		if f, ok := schemaOverrides[t]; ok {
			nullable := s.Nullable
			*s = f()
			s.Nullable = nullable
			return nil
		}
		if t.Kind() == reflect.Interface && t.NumMethod() == 0 {
			// An any field (terraform-json's values): any JSON value, null
			// included (an empty schema is, but the validator reads it the
			// OpenAPI 3.0 way: not nullable).
			*s = openapi3.Schema{Type: &openapi3.Types{"null", "boolean", "object", "array", "number", "string"}}
			return nil
		}
		if t != timeType && (t.Implements(jsonMarshalerType) || t.Implements(textMarshalerType) ||
			reflect.PointerTo(t).Implements(jsonMarshalerType) || reflect.PointerTo(t).Implements(textMarshalerType)) {
			return fmt.Errorf("%s encodes itself: add its schema to schemaOverrides", t)
		}
		if t == durationType {
			s.Description = "Nanoseconds."
		}
		if k := t.Kind(); request && strings.HasSuffix(name, "validity_hours") && (k >= reflect.Int && k <= reflect.Int64 || k == reflect.Pointer && t.Elem().Kind() == reflect.Int) {
			// Every validity is bounded before it becomes a duration (sshca).
			s.Min, s.Max = new(float64(1)), new(float64(sshca.MaxValidityHours))
		}
		if request && t.Kind() == reflect.String {
			// The ceiling the strict decoder enforces (bodyRule); for an
			// array or a map, name is its field's and the rule its items'.
			if r := bodyRule(name); !r.id {
				s.MaxLength = new(uint64(r.max))
			}
		}
		if t.Kind() == reflect.Struct && s.Properties != nil {
			if request {
				s.AdditionalProperties = openapi3.AdditionalProperties{Has: new(false)}
			}
			for _, f := range jsonFields(t) {
				if !request && !f.omitempty {
					s.Required = append(s.Required, f.name)
				}
				if f.typ.Kind() == reflect.Pointer {
					if prop := s.Properties[f.name]; prop != nil {
						s.Properties[f.name] = nullableRef(prop)
					}
				}
			}
			slices.Sort(s.Required)
		}
		return nil
	}
}

// nullableRef is ref that also takes null. A reference to a component is
// wrapped (the component itself is not nullable); an inline schema is copied.
func nullableRef(ref *openapi3.SchemaRef) *openapi3.SchemaRef {
	if strings.HasPrefix(ref.Ref, "#/components/") && !overriddenName(ref.Ref) {
		return openapi3.NewSchemaRef("", &openapi3.Schema{AnyOf: openapi3.SchemaRefs{ref, openapi3.NewSchemaRef("", &openapi3.Schema{Type: &openapi3.Types{"null"}})}})
	}
	v := *ref.Value
	v.Nullable = true
	return openapi3.NewSchemaRef("", &v)
}

func overriddenName(ref string) bool {
	for t := range schemaOverrides {
		if ref == "#/components/schemas/"+schemaName(t) {
			return true
		}
	}
	return false
}

type jsonField struct {
	name      string
	typ       reflect.Type
	omitempty bool
}

// jsonFields lists the fields encoding/json writes for t, with those of
// embedded structs (a nil embedded pointer writes none: they count as
// omitted).
func jsonFields(t reflect.Type) []jsonField {
	var out []jsonField
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() && !f.Anonymous {
			continue
		}
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			embeddedPtr := ft.Kind() == reflect.Pointer
			if embeddedPtr {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				for _, ef := range jsonFields(ft) {
					ef.omitempty = ef.omitempty || embeddedPtr
					out = append(out, ef)
				}
			}
			continue
		}
		if name == "" {
			if tag == "" {
				continue // openapi3gen documents only tagged fields
			}
			name = f.Name
		}
		out = append(out, jsonField{name: name, typ: f.Type,
			omitempty: strings.Contains(opts, "omitempty") || strings.Contains(opts, "omitzero")})
	}
	return out
}

// toOpenAPI31 rewrites 3.0's nullable into 3.1's type arrays, and drops the
// type names openapi3gen leaves as references to schemas that are inline.
func toOpenAPI31(ref *openapi3.SchemaRef, seen map[*openapi3.Schema]bool) {
	if ref == nil || ref.Value == nil {
		return
	}
	if !strings.HasPrefix(ref.Ref, "#/components/") || overriddenName(ref.Ref) {
		ref.Ref = ""
	}
	if seen[ref.Value] {
		return
	}
	s := ref.Value
	seen[s] = true
	if s.Nullable {
		s.Nullable = false
		if s.Type != nil && !s.Type.Includes("null") {
			ts := append(openapi3.Types{}, *s.Type...)
			ts = append(ts, "null")
			s.Type = &ts
		}
	}
	for _, p := range s.Properties {
		toOpenAPI31(p, seen)
	}
	toOpenAPI31(s.Items, seen)
	toOpenAPI31(s.AdditionalProperties.Schema, seen)
	for _, list := range [][]*openapi3.SchemaRef{s.AllOf, s.OneOf, s.AnyOf} {
		for _, r := range list {
			toOpenAPI31(r, seen)
		}
	}
}

// openAPI is the document as served, built once.
type openAPI struct {
	doc        *openapi3.T
	json, yaml []byte
}

func newOpenAPI(ctx context.Context, version string, ops []operation) (*openAPI, error) {
	doc, err := openAPIDocument(version, ops)
	if err != nil {
		return nil, err
	}
	if err := doc.Validate(ctx); err != nil {
		return nil, fmt.Errorf("openapi: the generated document is invalid: %w", err)
	}
	j, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("openapi: encode: %w", err)
	}
	var generic any
	if err := json.Unmarshal(j, &generic); err != nil {
		return nil, fmt.Errorf("openapi: re-read: %w", err)
	}
	y, err := yaml.Marshal(generic)
	if err != nil {
		return nil, fmt.Errorf("openapi: encode yaml: %w", err)
	}
	return &openAPI{doc: doc, json: j, yaml: y}, nil
}
