package search

import (
	"strconv"
	"strings"
)

// where renders the organization condition, the restrictions and the
// query's conditions as one WHERE clause with $1... placeholders; columns
// come only from the allow-list, every value is an argument.
func (q Query) where(org any, restrict []cond) (string, []any) {
	var b strings.Builder
	args := []any{org}
	b.WriteString(" WHERE t." + q.Resource.OrgColumn + " = $1")
	for _, c := range append(append([]cond{}, restrict...), q.conds...) {
		sql := strings.ReplaceAll(c.sql, "{c}", c.field.Column)
		if c.field.Via != "" {
			sql = strings.Replace(c.field.Via, "%s", sql, 1)
		}
		b.WriteString(" AND ")
		n := 0
		for _, ch := range sql {
			if ch == '?' {
				args = append(args, c.args[n])
				n++
				b.WriteString("$" + strconv.Itoa(len(args)))
				continue
			}
			b.WriteRune(ch)
		}
	}
	return b.String(), args
}

// CountSQL is the query counting every row of org the search matches.
func (q Query) CountSQL(org any) (string, []any) { return q.countSQL(org, nil) }

// IDsSQL is the query of the ids of the page's rows of org (idsSQL).
func (q Query) IDsSQL(org any) (string, []any) { return q.idsSQL(org, nil) }

// countSQL is CountSQL with the caller's restrictions.
func (q Query) countSQL(org any, restrict []cond) (string, []any) {
	w, args := q.where(org, restrict)
	return "SELECT count(*) FROM " + q.Resource.Table + " t" + w, args
}

// idsSQL is the query of the ids of the page's rows, in order. With a
// substring search each row also carries the count of every match (one
// scan for both: see Search); otherwise it has one column.
//
// With a substring search, the matching rows are gathered first (a
// materialized CTE, through the trigram indexes) and then sorted: left to
// itself the planner may walk the sort order's index and test every row
// against the pattern, hoping to fill the page early, which costs a scan of
// the whole organization when the matches sort late.
func (q Query) idsSQL(org any, restrict []cond) (string, []any) {
	w, args := q.where(org, restrict)
	dir := " ASC"
	if q.desc {
		dir = " DESC"
	}
	args = append(args, q.Page.Limit, q.Page.Offset())
	n := len(args)
	page := " LIMIT $" + strconv.Itoa(n-1) + " OFFSET $" + strconv.Itoa(n)
	if q.substring() {
		return "WITH m AS MATERIALIZED (SELECT t.id, " + q.sort.Column + " AS sort_key FROM " + q.Resource.Table + " t" + w + ")" +
			" SELECT m.id::text, (SELECT count(*) FROM m) FROM m ORDER BY m.sort_key" + dir + ", m.id" + dir + page, args
	}
	order := " ORDER BY " + q.sort.Column + dir
	if q.sort.Column != "t.id" {
		order += ", t.id" + dir
	}
	return "SELECT t.id::text FROM " + q.Resource.Table + " t" + w + order + page, args
}

// Counted reports whether IDsSQL's rows carry the total (a substring
// search).
func (q Query) Counted() bool { return q.substring() }

// substring reports whether the query has a substring search.
func (q Query) substring() bool {
	for _, c := range q.conds {
		if strings.Contains(c.sql, "ILIKE") {
			return true
		}
	}
	return false
}

// restrictTo is a condition the caller adds whatever the body says: column
// (of the resource's row, t) equals v.
func restrictTo(column string, v any) cond {
	return cond{field: Field{Column: column}, sql: "{c} = ?", args: []any{v}}
}
