package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// searchResource is a resource `shardform search` reaches: its search
// endpoint and the columns of its table (JSON fields of each row).
type searchResource struct {
	path    string
	columns []string
}

// searchResources are the API's search endpoints (POST .../search).
func searchResources() map[string]searchResource {
	return map[string]searchResource{
		"provision":        {"/v1/provision/search", []string{"id", "name", "provider", "region", "instance_type", "status", "created_at"}},
		"nodes":            {"/v1/nodes/search", []string{"id", "name", "provider", "region", "instance_type", "status", "ipv4", "created_at"}},
		"instances":        {"/v1/instances/search", []string{"id", "name", "node_name", "template", "players", "created_at"}},
		"credentials":      {"/v1/credentials/search", []string{"id", "name", "provider", "hint", "is_default", "created_at"}},
		"ssh-certificates": {"/v1/ssh/certificates/search", []string{"id", "serial_number", "key_id", "principals", "state", "valid_before"}},
		"dns-records":      {"/v1/dns/records/search", []string{"id", "type", "name", "content", "status"}},
		"audit-logs":       {"/v1/admin/audit-logs/search", []string{"id", "action", "target", "status", "created_at"}},
	}
}

// searchFlags are the query of a search: field=value pairs per kind.
type searchFlags struct {
	filters, search, after, before []string
	sortBy                         string
	desc                           bool
	extend                         []string
	page, limit                    int
}

func (c *cli) searchCmd() *cobra.Command {
	resources := searchResources()
	names := make([]string, 0, len(resources))
	for n := range resources {
		names = append(names, n)
	}
	slices.Sort(names)
	var f searchFlags
	cmd := &cobra.Command{
		Use:   "search RESOURCE [--filter field=value]... [--search field=text]... [--after field=value] [--before field=value] [--sort field [--desc]] [--extend name]...",
		Short: "Searches " + strings.Join(names, ", ") + " (the API's POST .../search).",
		Long: `Searches a resource with the API's query language (Takaro's conventions):
--filter is an exact match (several values of one field: any of them; of
several fields: all of them), --search a case-insensitive substring,
--after and --before a range on a number or an RFC 3339 time, --extend adds
related objects (node, runs, instances, node.instances, ...; shown with
--output json). The fields each resource allows are listed in the OpenAPI
document (GET /openapi.json); an unknown one is named in the error.

  shardform search nodes --filter region=fsn1 --filter status=ready --search name=mc-
  shardform search provision --after created_at=2026-12-01T00:00:00Z --sort created_at --desc
  shardform search nodes --search name=mc --extend instances -o json`,
		Args:      exactArgs(1),
		ValidArgs: names,
		RunE: func(cmd *cobra.Command, args []string) error {
			res, ok := resources[args[0]]
			if !ok {
				return usageErr(cmd, "search: unknown resource %q; one of %s", args[0], strings.Join(names, ", "))
			}
			body, err := f.body()
			if err != nil {
				return usageErr(cmd, "search: %v", err)
			}
			api, err := c.authed()
			if err != nil {
				return err
			}
			var out struct {
				Data []map[string]any `json:"data"`
				Meta listMeta         `json:"meta"`
			}
			raw, err := api.call(cmd.Context(), http.MethodPost, res.path, body, &out)
			if err != nil {
				return err
			}
			switch {
			case c.jsonOut():
				return c.writeJSON(raw)
			case c.quiet:
				ids := make([]string, len(out.Data))
				for i, row := range out.Data {
					ids[i] = cell(row["id"], c.now())
				}
				return c.ids(ids)
			}
			rows := make([][]string, len(out.Data))
			for i, row := range out.Data {
				for _, col := range res.columns {
					v := cell(row[col], c.now())
					if col == "status" || col == "state" {
						v = c.status(v)
					}
					rows[i] = append(rows[i], v)
				}
			}
			header := make([]string, len(res.columns))
			for i, col := range res.columns {
				header[i] = strings.ToUpper(strings.TrimSuffix(strings.TrimSuffix(col, "_at"), "_number"))
			}
			if err := c.table(header, rows); err != nil {
				return err
			}
			c.more(out.Meta, len(rows))
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringArrayVar(&f.filters, "filter", nil, "field=value: an exact match (repeatable)")
	fl.StringArrayVar(&f.search, "search", nil, "field=text: a case-insensitive substring (repeatable)")
	fl.StringArrayVar(&f.after, "after", nil, "field=value: greater than (a number or an RFC 3339 time)")
	fl.StringArrayVar(&f.before, "before", nil, "field=value: less than (a number or an RFC 3339 time)")
	fl.StringVar(&f.sortBy, "sort", "", "the field to sort by")
	fl.BoolVar(&f.desc, "desc", false, "sort in descending order")
	fl.StringArrayVar(&f.extend, "extend", nil, "a related object to include (repeatable; nested with dots)")
	fl.IntVar(&f.page, "page", 1, "the page to list")
	fl.IntVar(&f.limit, "limit", 100, "entries a page (at most 100)")
	return cmd
}

// body is the search's JSON body. Values are sent as strings: the API
// reads a number or a boolean from a string for a field of that type.
func (f *searchFlags) body() (map[string]any, error) {
	b := map[string]any{"page": f.page, "limit": f.limit}
	// pairs sets b[key] from field=value flags: every value of a field
	// (filters, search), or one (greaterThan, lessThan).
	pairs := func(key, flag string, list []string, one bool) error {
		if len(list) == 0 {
			return nil
		}
		m := map[string][]string{}
		for _, p := range list {
			k, v, ok := cutLabel(p)
			if !ok {
				return fmt.Errorf("--%s %q: want field=value", flag, p)
			}
			if one && len(m[k]) > 0 {
				return fmt.Errorf("--%s: %s given twice", flag, k)
			}
			m[k] = append(m[k], v)
		}
		if !one {
			b[key] = m
			return nil
		}
		single := make(map[string]string, len(m))
		for k, vs := range m {
			single[k] = vs[0]
		}
		b[key] = single
		return nil
	}
	for _, err := range []error{pairs("filters", "filter", f.filters, false), pairs("search", "search", f.search, false),
		pairs("greaterThan", "after", f.after, true), pairs("lessThan", "before", f.before, true)} {
		if err != nil {
			return nil, err
		}
	}
	if f.sortBy != "" {
		b["sortBy"] = f.sortBy
		if f.desc {
			b["sortDirection"] = "desc"
		}
	} else if f.desc {
		return nil, fmt.Errorf("--desc needs --sort")
	}
	if len(f.extend) > 0 {
		b["extend"] = f.extend
	}
	return b, nil
}

// cell is a row's value as a table shows it: times relative, lists joined.
func cell(v any, now time.Time) string {
	switch x := v.(type) {
	case nil:
		return "-"
	case string:
		if x == "" {
			return "-"
		}
		if t, err := time.Parse(time.RFC3339Nano, x); err == nil {
			return ago(t, now)
		}
		return x
	case float64:
		return fmt.Sprint(x)
	case bool:
		return fmt.Sprint(x)
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = cell(e, now)
		}
		return strings.Join(parts, ",")
	}
	b, _ := json.Marshal(v)
	return string(b)
}
