// Package search answers Takaro-style searches over the organization's
// resources: exact filters, case-insensitive substring search, ranges, sort,
// paging and extends (related objects), for POST /v1/{resource}/search.
//
// A search body is validated against the resource's explicit allow-list of
// fields (Parse), compiled into SQL whose columns come only from that list and
// whose values are always bind parameters (Query.where), and run with pgx:
// sqlc cannot express dynamic filters, so this package is the one place where
// SQL is built by hand. The rows themselves are read by the resource's domain
// service (its ...ByIDs method), so a search row is exactly what the
// resource's GET endpoint answers.
package search

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/shardform/shardform/domain"
)

// Type is the type of a searchable field.
type Type string

// Field types.
const (
	UUID      Type = "uuid"
	Text      Type = "text"
	Enum      Type = "enum"
	Int       Type = "int"
	Timestamp Type = "timestamp"
	Bool      Type = "bool"
	Labels    Type = "labels" // "key=value": the row's labels hold that pair
)

// Field is one field a search may name.
type Field struct {
	Name string
	Type Type
	// Column is the SQL expression of the field over the resource's row
	// (alias t), or over the related row (alias r) when Via is set.
	Column string
	// Via, when set, is an EXISTS subquery with one %s, where the field's
	// condition goes (a field of related rows, such as a node's fqdn).
	Via    string
	Values []string // Enum: the allowed values
	// FilterSQL, when set, is the exact match's SQL in place of
	// "Column = ANY(?)": each ? is the array of values (a form the
	// planner can use an index for, where Column is an expression).
	FilterSQL string
	Search    bool // substring search allowed (Text)
	Sort      bool // sortBy allowed
}

// Resource is what may be searched and how: the allow-list.
type Resource struct {
	Name        string // the path segment(s): "nodes", "ssh/certificates"
	Kind        string // the kind of its objects, for extends: "node"
	Table       string
	OrgColumn   string // t.<column> = the organization's id
	IntID       bool   // id is a bigint (audit logs), else a uuid
	Fields      []Field
	DefaultSort string
	DefaultDesc bool
	Perm        domain.Permission // what the GET list endpoint needs
	// Extends are the extend paths allowed (dotted), in the order listed.
	Extends []string
}

// field returns the named field.
func (r *Resource) field(name string) (Field, bool) {
	for _, f := range r.Fields {
		if f.Name == name {
			return f, true
		}
	}
	return Field{}, false
}

// FieldNames lists the fields' names (filters).
func (r *Resource) FieldNames(keep func(Field) bool) []string {
	var out []string
	for _, f := range r.Fields {
		if keep == nil || keep(f) {
			out = append(out, f.Name)
		}
	}
	return out
}

// Searchable, Rangeable and Sortable tell what a field allows.
func Searchable(f Field) bool { return f.Search }
func Rangeable(f Field) bool  { return f.Type == Int || f.Type == Timestamp }
func Sortable(f Field) bool   { return f.Sort }
func Filterable(f Field) bool { return true }

// Body is the JSON body of a search.
type Body struct {
	Filters       map[string]json.RawMessage `json:"filters,omitempty"` // field → array of values
	Search        map[string]json.RawMessage `json:"search,omitempty"`  // field → array of substrings
	GreaterThan   map[string]json.RawMessage `json:"greaterThan,omitempty"`
	LessThan      map[string]json.RawMessage `json:"lessThan,omitempty"`
	SortBy        string                     `json:"sortBy,omitempty"`
	SortDirection string                     `json:"sortDirection,omitempty"`
	Page          *int64                     `json:"page,omitempty"`
	Limit         *int64                     `json:"limit,omitempty"`
	Extend        []string                   `json:"extend,omitempty"`
}

// MaxValues bounds the values of one filter or search field.
const MaxValues = 100

// cond is one validated condition: SQL with ? for each of its args.
type cond struct {
	field Field
	sql   string // over the column placeholder {c} and ? for args
	args  []any
}

// Query is a validated search, ready to compile.
type Query struct {
	Resource *Resource
	conds    []cond
	sort     Field
	desc     bool
	Page     domain.Page
	Extend   []string
}

// Parse validates b against r's allow-list: every field known, every value
// of its field's type, sort and extends allowed. Errors are
// *domain.ValidationError naming the field ("filters.colour").
func Parse(r *Resource, b Body) (Query, error) {
	q := Query{Resource: r, Page: domain.Page{Page: 1, Limit: domain.DefaultLimit}}
	if b.Page != nil {
		if *b.Page < 1 || *b.Page > 1_000_000 {
			return Query{}, domain.Invalid("page", "must be a whole number from 1 to 1000000")
		}
		q.Page.Page = int32(*b.Page)
	}
	if b.Limit != nil {
		if *b.Limit < 1 || *b.Limit > domain.MaxLimit {
			return Query{}, domain.Invalid("limit", "must be a whole number from 1 to %d", domain.MaxLimit)
		}
		q.Page.Limit = int32(*b.Limit)
	}
	for _, name := range sortedKeys(b.Filters) {
		path := "filters." + name
		f, err := r.known(path, name, Filterable)
		if err != nil {
			return Query{}, err
		}
		var vals []json.RawMessage
		if err := json.Unmarshal(b.Filters[name], &vals); err != nil || vals == nil {
			return Query{}, domain.Invalid(path, "must be an array of values")
		}
		if len(vals) == 0 || len(vals) > MaxValues {
			return Query{}, domain.Invalid(path, "must list 1 to %d values", MaxValues)
		}
		c, err := filterCond(path, f, vals)
		if err != nil {
			return Query{}, err
		}
		q.conds = append(q.conds, c)
	}
	for _, name := range sortedKeys(b.Search) {
		path := "search." + name
		f, err := r.known(path, name, Searchable)
		if err != nil {
			return Query{}, err
		}
		var vals []string
		if err := json.Unmarshal(b.Search[name], &vals); err != nil || vals == nil {
			return Query{}, domain.Invalid(path, "must be an array of strings")
		}
		if len(vals) == 0 || len(vals) > MaxValues {
			return Query{}, domain.Invalid(path, "must list 1 to %d substrings", MaxValues)
		}
		parts := make([]string, len(vals))
		args := make([]any, len(vals))
		for i, v := range vals {
			if v == "" {
				return Query{}, domain.Invalid(fmt.Sprintf("%s[%d]", path, i), "must not be empty")
			}
			if len(v) > domain.MaxTextLength {
				return Query{}, domain.Invalid(fmt.Sprintf("%s[%d]", path, i), "must be at most %d characters", domain.MaxTextLength)
			}
			parts[i] = "{c} ILIKE ?"
			args[i] = "%" + EscapeLike(v) + "%"
		}
		q.conds = append(q.conds, cond{field: f, sql: "(" + strings.Join(parts, " OR ") + ")", args: args})
	}
	for _, rng := range []struct {
		name string
		op   string
		m    map[string]json.RawMessage
	}{{"greaterThan", ">", b.GreaterThan}, {"lessThan", "<", b.LessThan}} {
		for _, name := range sortedKeys(rng.m) {
			path := rng.name + "." + name
			f, err := r.known(path, name, Rangeable)
			if err != nil {
				return Query{}, err
			}
			v, err := value(path, f, rng.m[name])
			if err != nil {
				return Query{}, err
			}
			q.conds = append(q.conds, cond{field: f, sql: "{c} " + rng.op + " ?", args: []any{v}})
		}
	}
	sortBy := b.SortBy
	if sortBy == "" {
		sortBy = r.DefaultSort
		q.desc = r.DefaultDesc
	}
	f, ok := r.field(sortBy)
	if !ok || !f.Sort {
		return Query{}, domain.Invalid("sortBy", "unknown sort field %q; allowed: %s", sortBy, strings.Join(r.FieldNames(Sortable), ", "))
	}
	q.sort = f
	switch b.SortDirection {
	case "":
	case "asc":
		q.desc = false
	case "desc":
		q.desc = true
	default:
		return Query{}, domain.Invalid("sortDirection", "must be asc or desc")
	}
	seen := map[string]bool{}
	for i, e := range b.Extend {
		if !slices.Contains(r.Extends, e) {
			allowed := "none"
			if len(r.Extends) > 0 {
				allowed = strings.Join(r.Extends, ", ")
			}
			return Query{}, domain.Invalid(fmt.Sprintf("extend[%d]", i), "unknown extend %q; allowed: %s", e, allowed)
		}
		if !seen[e] {
			seen[e] = true
			q.Extend = append(q.Extend, e)
		}
	}
	return q, nil
}

// known returns the field name may name at path, or a 400 listing the
// fields allowed there.
func (r *Resource) known(path, name string, allowed func(Field) bool) (Field, error) {
	f, ok := r.field(name)
	if !ok || !allowed(f) {
		return Field{}, domain.Invalid(path, "unknown field; allowed: %s", strings.Join(r.FieldNames(allowed), ", "))
	}
	return f, nil
}

// filterCond is the exact match of f against any of vals.
func filterCond(path string, f Field, vals []json.RawMessage) (cond, error) {
	if f.Type == Labels {
		parts := make([]string, len(vals))
		args := make([]any, len(vals))
		for i, raw := range vals {
			p := fmt.Sprintf("%s[%d]", path, i)
			var s string
			if err := json.Unmarshal(raw, &s); err != nil {
				return cond{}, domain.Invalid(p, "must be a string key=value")
			}
			k, v, ok := strings.Cut(s, "=")
			if !ok || k == "" {
				return cond{}, domain.Invalid(p, "must be key=value")
			}
			js, _ := json.Marshal(map[string]string{k: v})
			parts[i] = "{c} @> ?::jsonb"
			args[i] = string(js)
		}
		return cond{field: f, sql: "(" + strings.Join(parts, " OR ") + ")", args: args}, nil
	}
	var arg any
	switch f.Type {
	case UUID:
		a := make([]uuid.UUID, len(vals))
		for i, raw := range vals {
			v, err := value(fmt.Sprintf("%s[%d]", path, i), f, raw)
			if err != nil {
				return cond{}, err
			}
			a[i] = v.(uuid.UUID)
		}
		arg = a
	case Text, Enum:
		a := make([]string, len(vals))
		for i, raw := range vals {
			v, err := value(fmt.Sprintf("%s[%d]", path, i), f, raw)
			if err != nil {
				return cond{}, err
			}
			a[i] = v.(string)
		}
		arg = a
	case Int:
		a := make([]int64, len(vals))
		for i, raw := range vals {
			v, err := value(fmt.Sprintf("%s[%d]", path, i), f, raw)
			if err != nil {
				return cond{}, err
			}
			a[i] = v.(int64)
		}
		arg = a
	case Timestamp:
		a := make([]time.Time, len(vals))
		for i, raw := range vals {
			v, err := value(fmt.Sprintf("%s[%d]", path, i), f, raw)
			if err != nil {
				return cond{}, err
			}
			a[i] = v.(time.Time)
		}
		arg = a
	case Bool:
		a := make([]bool, len(vals))
		for i, raw := range vals {
			v, err := value(fmt.Sprintf("%s[%d]", path, i), f, raw)
			if err != nil {
				return cond{}, err
			}
			a[i] = v.(bool)
		}
		arg = a
	default:
		return cond{}, fmt.Errorf("search field %s: unknown type %q", f.Name, f.Type)
	}
	if f.FilterSQL != "" {
		args := make([]any, strings.Count(f.FilterSQL, "?"))
		for i := range args {
			args[i] = arg
		}
		return cond{field: f, sql: f.FilterSQL, args: args}, nil
	}
	return cond{field: f, sql: "{c} = ANY(?)", args: []any{arg}}, nil
}

// value decodes one value of f's type.
func value(path string, f Field, raw json.RawMessage) (any, error) {
	raw = bytes.TrimSpace(raw)
	switch f.Type {
	case UUID:
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return nil, domain.Invalid(path, "must be a UUID string")
		}
		id, err := domain.ParseID(path, s)
		if err != nil {
			return nil, domain.Invalid(path, "must be a canonical lowercase UUID")
		}
		return id, nil
	case Text, Enum:
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return nil, domain.Invalid(path, "must be a string")
		}
		if len(s) > domain.MaxTextLength {
			return nil, domain.Invalid(path, "must be at most %d characters", domain.MaxTextLength)
		}
		if f.Type == Enum && !slices.Contains(f.Values, s) {
			return nil, domain.Invalid(path, "must be one of %s", strings.Join(f.Values, ", "))
		}
		return s, nil
	case Int:
		// A number, or a string holding one (what a command line sends).
		var str string
		if json.Unmarshal(raw, &str) == nil {
			raw = []byte(str)
		}
		var n json.Number
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if dec.Decode(&n) != nil || dec.More() {
			return nil, domain.Invalid(path, "must be a whole number")
		}
		i, err := n.Int64()
		if err != nil || i > math.MaxInt64/2 || i < math.MinInt64/2 {
			return nil, domain.Invalid(path, "must be a whole number")
		}
		return i, nil
	case Timestamp:
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return nil, domain.Invalid(path, "must be an RFC 3339 timestamp string")
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil || t.Year() < 1 || t.Year() > 9999 {
			return nil, domain.Invalid(path, "must be an RFC 3339 timestamp (2006-01-02T15:04:05Z)")
		}
		return t, nil
	case Bool:
		var v bool
		if json.Unmarshal(raw, &v) == nil {
			return v, nil
		}
		var str string
		if json.Unmarshal(raw, &str) == nil && (str == "true" || str == "false") {
			return str == "true", nil
		}
		return nil, domain.Invalid(path, "must be true or false")
	}
	return nil, domain.Invalid(path, "cannot be compared")
}

// EscapeLike escapes LIKE's wildcards (% and _) and its escape character
// (\), so s matches only itself.
func EscapeLike(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return r.Replace(s)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
