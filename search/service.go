package search

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/shardform/shardform/audit"
	"github.com/shardform/shardform/credentials"
	"github.com/shardform/shardform/dns"
	"github.com/shardform/shardform/domain"
	"github.com/shardform/shardform/identity"
	"github.com/shardform/shardform/placement"
	"github.com/shardform/shardform/provision"
	"github.com/shardform/shardform/sshsign"
)

// DB runs the search's own two queries (a pgxpool.Pool).
type DB interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Provisioning loads requests, nodes and runs by id.
type Provisioning interface {
	RequestsByIDs(ctx context.Context, p *domain.Principal, ids []uuid.UUID) ([]provision.Request, error)
	NodesByIDs(ctx context.Context, p *domain.Principal, ids []uuid.UUID) ([]provision.Node, error)
	LatestRuns(ctx context.Context, p *domain.Principal, provisionIDs []uuid.UUID, per int32) ([]provision.Run, error)
}

// Instances loads instances by id and by node.
type Instances interface {
	InstancesByIDs(ctx context.Context, p *domain.Principal, ids []uuid.UUID) ([]placement.Instance, error)
	InstancesOfNodes(ctx context.Context, p *domain.Principal, nodeIDs []uuid.UUID) ([]placement.Instance, error)
}

// Credentials loads credentials by id.
type Credentials interface {
	ByIDs(ctx context.Context, p *domain.Principal, ids []uuid.UUID) ([]credentials.Credential, error)
}

// Certificates loads SSH certificates by id (those the principal may see).
type Certificates interface {
	CertificatesByIDs(ctx context.Context, p *domain.Principal, ids []uuid.UUID) ([]sshsign.Certificate, error)
}

// DNS loads records by id and by node.
type DNS interface {
	RecordsByIDs(ctx context.Context, p *domain.Principal, ids []uuid.UUID) ([]dns.Record, error)
	RecordsOfNodes(ctx context.Context, p *domain.Principal, nodeIDs []uuid.UUID) ([]dns.Record, error)
}

// Audit loads audit entries by id.
type Audit interface {
	ByIDs(ctx context.Context, p *domain.Principal, ids []int64) ([]audit.Entry, error)
}

// Members loads the organization's members by user id.
type Members interface {
	MembersByUserIDs(ctx context.Context, p *domain.Principal, userIDs []uuid.UUID) ([]identity.Member, error)
}

// Sources are the domain services rows are read from; a nil one leaves its
// resources (and the extends reaching them) out.
type Sources struct {
	Provisioning Provisioning
	Instances    Instances
	Credentials  Credentials
	Certificates Certificates
	DNS          DNS
	Audit        Audit
	Members      Members
}

// RunsPerRequest is how many of a request's latest runs its runs extend holds.
const RunsPerRequest = 5

// Service runs searches.
type Service struct {
	db        DB
	src       Sources
	resources []*Resource
}

// New returns a search service over db and the domain services.
func New(db DB, src Sources) *Service {
	s := &Service{db: db, src: src}
	for _, r := range Resources() {
		if s.has(r.Kind) {
			r.Extends = slices.DeleteFunc(r.Extends, func(path string) bool { return !s.reachable(r.Kind, path) })
			s.resources = append(s.resources, r)
		}
	}
	return s
}

// has reports whether objects of kind can be loaded.
func (s *Service) has(kind string) bool {
	switch kind {
	case KindProvision, KindNode, KindRun:
		return s.src.Provisioning != nil
	case KindInstance:
		return s.src.Instances != nil
	case KindCredential:
		return s.src.Credentials != nil
	case KindCertificate:
		return s.src.Certificates != nil
	case KindDNSRecord:
		return s.src.DNS != nil
	case KindAudit:
		return s.src.Audit != nil
	case KindMember:
		return s.src.Members != nil
	}
	return false
}

// reachable reports whether every kind along path can be loaded.
func (s *Service) reachable(kind, path string) bool {
	for _, name := range strings.Split(path, ".") {
		rel, ok := relationOf(kind, name)
		if !ok || !s.has(rel.target) {
			return false
		}
		kind = rel.target
	}
	return true
}

func relationOf(kind, name string) (relation, bool) {
	for _, r := range relations(kind) {
		if r.name == name {
			return r, true
		}
	}
	return relation{}, false
}

// Resources are the resources this service can search.
func (s *Service) Resources() []*Resource { return s.resources }

// Result is one page of a search.
type Result struct {
	Data  []*Object
	Page  domain.Page
	Total int64
}

// Search runs body against the named resource for the principal: only the
// principal's organization's rows, with the resource's GET permission.
func (s *Service) Search(ctx context.Context, p *domain.Principal, resource string, body Body) (Result, error) {
	var r *Resource
	for _, x := range s.resources {
		if x.Name == resource {
			r = x
		}
	}
	if r == nil {
		return Result{}, domain.NotFound("search resource")
	}
	if p == nil || !p.HasOrg {
		return Result{}, domain.Forbidden("you belong to no organization")
	}
	var restrict []cond
	switch {
	case r.Kind == KindCertificate && p.Can(domain.PermSSHAdmin):
	case r.Kind == KindCertificate && p.Can(domain.PermSSHSign):
		restrict = append(restrict, restrictTo("t.user_id", p.UserID)) // ssh:sign sees its own
	case !p.Can(r.Perm):
		return Result{}, domain.Forbidden("missing permission %s", r.Perm)
	}
	q, err := Parse(r, body)
	if err != nil {
		return Result{}, err
	}
	for _, path := range q.Extend {
		// An extend reads objects of other kinds: each needs its own
		// permission, whether or not a row has any.
		kind := r.Kind
		for _, name := range strings.Split(path, ".") {
			rel, _ := relationOf(kind, name)
			kind = rel.target
			if perm := kindPerm(kind); !p.Can(perm) && !(kind == KindCertificate && p.Can(domain.PermSSHAdmin)) {
				return Result{}, domain.Forbidden("extend %s: missing permission %s", path, perm)
			}
		}
	}
	out := Result{Page: q.Page, Data: []*Object{}}
	ids, err := s.ids(ctx, q, p, restrict, &out.Total)
	if err != nil {
		return Result{}, fmt.Errorf("search %s: %w", r.Name, err)
	}
	if len(ids) == 0 {
		return out, nil
	}
	objs, err := s.load(ctx, p, r.Kind, ids)
	if err != nil {
		return Result{}, fmt.Errorf("search %s: %w", r.Name, err)
	}
	byID := make(map[string]*Object, len(objs))
	for _, o := range objs {
		byID[o.id] = o
	}
	for _, id := range ids {
		if o, ok := byID[id]; ok { // a row deleted since the id query is left out
			out.Data = append(out.Data, o)
		}
	}
	if err := s.extend(ctx, p, r.Kind, out.Data, extendTree(q.Extend)); err != nil {
		return Result{}, fmt.Errorf("search %s: extend: %w", r.Name, err)
	}
	return out, nil
}

// ids runs the search's own SQL: the page's ids in order and the total.
// A substring search is one query (its matches are gathered once, then
// counted and sorted), unless the page is past the end; otherwise the count
// and the page are two queries (the page often walks an index in order and
// stops early).
func (s *Service) ids(ctx context.Context, q Query, p *domain.Principal, restrict []cond, total *int64) ([]string, error) {
	sql, args := q.idsSQL(p.OrgID, restrict)
	rows, err := s.db.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	ids := []string{}
	if q.Counted() {
		var id string
		if _, err := pgx.ForEachRow(rows, []any{&id, total}, func() error {
			ids = append(ids, id)
			return nil
		}); err != nil {
			return nil, err
		}
		if len(ids) > 0 || q.Page.Page == 1 {
			return ids, nil // with no row on page 1, nothing matches: the total is 0
		}
	} else if ids, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		return nil, err
	}
	sql, args = q.countSQL(p.OrgID, restrict)
	if err := s.db.QueryRow(ctx, sql, args...).Scan(total); err != nil {
		return nil, fmt.Errorf("count: %w", err)
	}
	return ids, nil
}

// tree is a set of extend paths as nested names.
type tree map[string]tree

func extendTree(paths []string) tree {
	t := tree{}
	for _, p := range paths {
		at := t
		for _, name := range strings.Split(p, ".") {
			if at[name] == nil {
				at[name] = tree{}
			}
			at = at[name]
		}
	}
	return t
}

// extend adds the extends of t to objs (of kind): one query per relation
// per level, however many objects.
func (s *Service) extend(ctx context.Context, p *domain.Principal, kind string, objs []*Object, t tree) error {
	if len(objs) == 0 || len(t) == 0 {
		return nil
	}
	for _, rel := range relations(kind) {
		sub, ok := t[rel.name]
		if !ok {
			continue
		}
		var children []*Object
		if rel.many {
			parentIDs := make([]uuid.UUID, 0, len(objs))
			for _, o := range objs {
				parentIDs = append(parentIDs, o.uuid)
			}
			kids, err := s.childrenOf(ctx, p, kind, rel, parentIDs)
			if err != nil {
				return err
			}
			byParent := map[uuid.UUID][]*Object{}
			for _, k := range kids {
				byParent[k.refs[kind]] = append(byParent[k.refs[kind]], k)
			}
			for _, o := range objs {
				list := byParent[o.uuid]
				if list == nil {
					list = []*Object{}
				}
				o.extra = append(o.extra, extra{rel.name, list})
			}
			children = kids
		} else {
			var ids []uuid.UUID
			seen := map[uuid.UUID]bool{}
			for _, o := range objs {
				if id, ok := o.refs[rel.name]; ok && !seen[id] {
					seen[id] = true
					ids = append(ids, id)
				}
			}
			var targets []*Object
			if len(ids) > 0 {
				strs := make([]string, len(ids))
				for i, id := range ids {
					strs[i] = id.String()
				}
				var err error
				if targets, err = s.load(ctx, p, rel.target, strs); err != nil {
					return err
				}
			}
			byID := make(map[uuid.UUID]*Object, len(targets))
			for _, o := range targets {
				byID[o.uuid] = o
			}
			for _, o := range objs {
				var v any // JSON null: no such object, or not in the organization
				if id, ok := o.refs[rel.name]; ok {
					if target, ok := byID[id]; ok {
						v = target
					}
				}
				o.extra = append(o.extra, extra{rel.name, v})
			}
			children = targets
		}
		if err := s.extend(ctx, p, rel.target, children, sub); err != nil {
			return err
		}
	}
	return nil
}

// load reads the objects of kind with the given ids (one query per kind,
// sometimes two: a node's DNS names, a request's drift), in no order.
func (s *Service) load(ctx context.Context, p *domain.Principal, kind string, ids []string) ([]*Object, error) {
	if kind == KindAudit {
		nums := make([]int64, 0, len(ids))
		for _, id := range ids {
			n, err := strconv.ParseInt(id, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("audit id %q: %w", id, err)
			}
			nums = append(nums, n)
		}
		es, err := s.src.Audit.ByIDs(ctx, p, nums)
		if err != nil {
			return nil, err
		}
		out := make([]*Object, len(es))
		for i, e := range es {
			out[i] = &Object{id: strconv.FormatInt(e.ID, 10), Value: e}
		}
		return out, nil
	}
	uids := make([]uuid.UUID, 0, len(ids))
	for _, id := range ids {
		u, err := uuid.Parse(id)
		if err != nil {
			return nil, fmt.Errorf("%s id %q: %w", kind, id, err)
		}
		uids = append(uids, u)
	}
	switch kind {
	case KindProvision:
		rs, err := s.src.Provisioning.RequestsByIDs(ctx, p, uids)
		return objects(rs, err, func(r provision.Request) *Object {
			return obj(r.ID, r, "node", r.NodeID)
		})
	case KindNode:
		ns, err := s.src.Provisioning.NodesByIDs(ctx, p, uids)
		return objects(ns, err, func(n provision.Node) *Object {
			return obj(n.ID, n, "provision", n.ProvisionID)
		})
	case KindInstance:
		is, err := s.src.Instances.InstancesByIDs(ctx, p, uids)
		return objects(is, err, func(i placement.Instance) *Object {
			return obj(i.ID, i, "node", &i.NodeID)
		})
	case KindCredential:
		cs, err := s.src.Credentials.ByIDs(ctx, p, uids)
		return objects(cs, err, func(c credentials.Credential) *Object { return obj(c.ID, c) })
	case KindCertificate:
		cs, err := s.src.Certificates.CertificatesByIDs(ctx, p, uids)
		return objects(cs, err, func(c sshsign.Certificate) *Object {
			return obj(c.ID, c, "node", c.NodeID, "user", c.UserID)
		})
	case KindDNSRecord:
		rs, err := s.src.DNS.RecordsByIDs(ctx, p, uids)
		return objects(rs, err, dnsObject)
	case KindMember:
		ms, err := s.src.Members.MembersByUserIDs(ctx, p, uids)
		return objects(ms, err, func(m identity.Member) *Object { return obj(m.UserID, m) })
	}
	return nil, fmt.Errorf("cannot load objects of kind %s", kind)
}

// childrenOf reads the objects of a many relation of the parents, each
// naming its parent in refs[parent kind]: one query.
func (s *Service) childrenOf(ctx context.Context, p *domain.Principal, kind string, rel relation, parents []uuid.UUID) ([]*Object, error) {
	switch kind + "." + rel.name {
	case "provision.runs":
		rs, err := s.src.Provisioning.LatestRuns(ctx, p, parents, RunsPerRequest)
		return objects(rs, err, func(r provision.Run) *Object { return obj(r.ID, r, KindProvision, &r.ProvisionID) })
	case "node.instances":
		is, err := s.src.Instances.InstancesOfNodes(ctx, p, parents)
		return objects(is, err, func(i placement.Instance) *Object { return obj(i.ID, i, "node", &i.NodeID, KindNode, &i.NodeID) })
	case "node.dns_records":
		rs, err := s.src.DNS.RecordsOfNodes(ctx, p, parents)
		return objects(rs, err, func(r dns.Record) *Object {
			o := dnsObject(r)
			if id, ok := o.refs["node"]; ok {
				o.refs[KindNode] = id
			}
			return o
		})
	}
	return nil, fmt.Errorf("no relation %s.%s", kind, rel.name)
}

func dnsObject(r dns.Record) *Object { return obj(r.ID, r, "node", r.NodeID) }

func objects[T any](vs []T, err error, f func(T) *Object) ([]*Object, error) {
	if err != nil {
		return nil, err
	}
	out := make([]*Object, len(vs))
	for i, v := range vs {
		out[i] = f(v)
	}
	return out, nil
}

// obj is an object with its references (name, *uuid.UUID pairs; nil
// pointers are no reference).
func obj(id uuid.UUID, v any, refs ...any) *Object {
	o := &Object{id: id.String(), uuid: id, Value: v, refs: map[string]uuid.UUID{}}
	for i := 0; i+1 < len(refs); i += 2 {
		if ref, ok := refs[i+1].(*uuid.UUID); ok && ref != nil {
			o.refs[refs[i].(string)] = *ref
		}
	}
	return o
}

// Object is one row of a search: the resource's own JSON (what its GET
// answers) with its extends as extra keys.
type Object struct {
	id    string
	uuid  uuid.UUID
	Value any
	refs  map[string]uuid.UUID
	extra []extra
}

type extra struct {
	key   string
	value any // *Object, []*Object or nil
}

// MarshalJSON writes the value's JSON object with the extends appended.
func (o *Object) MarshalJSON() ([]byte, error) {
	b, err := json.Marshal(o.Value)
	if err != nil || len(o.extra) == 0 {
		return b, err
	}
	b = bytes.TrimRight(b, " \n")
	if len(b) < 2 || b[len(b)-1] != '}' {
		return nil, fmt.Errorf("search object %s: not a JSON object", o.id)
	}
	out := append([]byte{}, b[:len(b)-1]...)
	for i, e := range o.extra {
		if i > 0 || len(b) > 2 {
			out = append(out, ',')
		}
		k, _ := json.Marshal(e.key)
		v, err := json.Marshal(e.value)
		if err != nil {
			return nil, err
		}
		out = append(out, k...)
		out = append(out, ':')
		out = append(out, v...)
	}
	return append(out, '}'), nil
}
