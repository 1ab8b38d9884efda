package search

import (
	"bytes"
	"encoding/json"
	"errors"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/shardform/shardform/domain"
)

func resource(t testing.TB, name string) *Resource {
	t.Helper()
	for _, r := range Resources() {
		if r.Name == name {
			return r
		}
	}
	t.Fatalf("no resource %s", name)
	return nil
}

// decodeBody decodes a search body as the API does (strictly).
func decodeBody(raw []byte) (Body, error) {
	var b Body
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	err := dec.Decode(&b)
	return b, err
}

func TestCompiledSQL(t *testing.T) {
	t.Parallel()
	org := uuid.New()
	b, err := decodeBody([]byte(`{"filters":{"region":["fsn1","nbg1"],"labels":["game=valheim"]},"search":{"name":["x'; DROP TABLE nodes; --","50%_\\"],"fqdn":["eu"]},
		"greaterThan":{"vcpu":2},"lessThan":{"created_at":"2026-01-01T00:00:00Z"},"sortBy":"name","sortDirection":"desc","page":3,"limit":10}`))
	if err != nil {
		t.Fatal(err)
	}
	q, err := Parse(resource(t, "nodes"), b)
	if err != nil {
		t.Fatal(err)
	}
	sql, args := q.IDsSQL(org)
	want := "WITH m AS MATERIALIZED (SELECT t.id, t.name AS sort_key FROM nodes t WHERE t.organization_id = $1" +
		" AND (t.labels @> $2::jsonb) AND t.region = ANY($3)" +
		" AND EXISTS (SELECT 1 FROM dns_records r WHERE r.organization_id = t.organization_id AND r.node_id = t.id AND r.type IN ('A', 'AAAA') AND r.status <> 'deleted' AND (r.name ILIKE $4))" +
		" AND (t.name ILIKE $5 OR t.name ILIKE $6)" +
		" AND t.vcpu > $7 AND t.created_at < $8)" +
		" SELECT m.id::text, (SELECT count(*) FROM m) FROM m ORDER BY m.sort_key DESC, m.id DESC LIMIT $9 OFFSET $10"
	if sql != want {
		t.Errorf("sql\n%s\nwant\n%s", sql, want)
	}
	if len(args) != 10 || args[0] != org || args[1] != `{"game":"valheim"}` || args[3] != "%eu%" || args[4] != `%x'; DROP TABLE nodes; --%` ||
		args[5] != `%50\%\_\\%` || args[8] != int32(10) || args[9] != int32(20) {
		t.Errorf("args %#v", args)
	}
	if strings.Contains(sql, "DROP") {
		t.Error("a value reached the SQL text")
	}
}

func TestCompiledSQLWithoutSearch(t *testing.T) {
	t.Parallel()
	b, err := decodeBody([]byte(`{"filters":{"status":["stopped","ready"]},"sortBy":"status"}`))
	if err != nil {
		t.Fatal(err)
	}
	q, err := Parse(resource(t, "nodes"), b)
	if err != nil {
		t.Fatal(err)
	}
	sql, args := q.IDsSQL(uuid.Nil)
	want := "SELECT t.id::text FROM nodes t WHERE t.organization_id = $1" +
		" AND ((t.status = ANY($2) AND t.power_state <> 'stopped') OR (t.power_state = 'stopped' AND 'stopped' = ANY($3)))" +
		" ORDER BY (CASE WHEN t.power_state = 'stopped' THEN 'stopped' ELSE t.status END) ASC, t.id ASC LIMIT $4 OFFSET $5"
	if sql != want || len(args) != 5 {
		t.Errorf("sql\n%s\nwant\n%s\nargs %v", sql, want, args)
	}
}

func TestEscapeLike(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{`a`: `a`, `50%`: `50\%`, `a_b`: `a\_b`, `c:\x`: `c:\\x`, `\%_`: `\\\%\_`} {
		if got := EscapeLike(in); got != want {
			t.Errorf("EscapeLike(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestExtendPaths(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]string{
		"provision":        "node node.dns_records node.instances runs",
		"nodes":            "dns_records instances provision provision.runs",
		"instances":        "node node.dns_records node.provision",
		"ssh/certificates": "node node.dns_records node.instances node.provision user",
		"credentials":      "",
	} {
		if got := strings.Join(resource(t, name).Extends, " "); got != want {
			t.Errorf("%s extends %q, want %q", name, got, want)
		}
	}
}

var placeholder = regexp.MustCompile(`\$(\d+)`)

// FuzzParse feeds arbitrary bodies to the decoder and validator of every
// resource: a body is refused with a ValidationError or compiles to SQL whose
// placeholders match its arguments and whose text holds no value.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"filters":{"name":["a"]}}`, `{"filters":{"colour":["red"]}}`, `{"search":{"name":["%_\\"]}}`,
		`{"greaterThan":{"created_at":"2026-01-01T00:00:00Z"},"lessThan":{"vcpu":4}}`, `{"filters":{"vcpu":[1,2,"x"]}}`,
		`{"sortBy":"name","sortDirection":"desc","page":2,"limit":5}`, `{"extend":["node","node.instances","runs"]}`,
		`{"filters":{"labels":["a=b"],"id":["00000000-0000-0000-0000-000000000000"]}}`, `{"filters":{"revoked":[true]}}`,
		`{"filters":{"status":[null]}}`, `{"limit":1e9}`, `{"search":{"name":["'; select pg_sleep(1); --"]}}`,
	} {
		f.Add([]byte(s))
	}
	resources := Resources()
	f.Fuzz(func(t *testing.T, raw []byte) {
		b, err := decodeBody(raw)
		if err != nil {
			return
		}
		for _, r := range resources {
			q, err := Parse(r, b)
			if err != nil {
				var verr *domain.ValidationError
				if !errors.As(err, &verr) {
					t.Fatalf("%s: %T %v is not a ValidationError", r.Name, err, err)
				}
				continue
			}
			for _, build := range []func(any) (string, []any){q.CountSQL, q.IDsSQL} {
				sql, args := build(uuid.Nil)
				max := 0
				for _, m := range placeholder.FindAllStringSubmatch(sql, -1) {
					n, _ := strconv.Atoi(m[1])
					max = maxInt(max, n)
				}
				if max != len(args) {
					t.Fatalf("%s: %d placeholders, %d args: %s", r.Name, max, len(args), sql)
				}
				for _, raw := range b.Search {
					var vals []string
					_ = json.Unmarshal(raw, &vals)
					for _, v := range vals {
						if len(v) > 3 && strings.ContainsAny(v, "';-()$") && strings.Contains(sql, v) {
							t.Fatalf("%s: value %q in the SQL %s", r.Name, v, sql)
						}
					}
				}
			}
		}
	})
}

func maxInt(a, b int) int {
	if a > b {
		return a
	}
	return b
}
