package search

import (
	"slices"

	"github.com/shardform/shardform/domain"
)

// Kinds of objects and the relations extends follow.
const (
	KindProvision   = "provision"
	KindNode        = "node"
	KindInstance    = "instance"
	KindCredential  = "credential"
	KindCertificate = "certificate"
	KindDNSRecord   = "dns_record"
	KindAudit       = "audit_log"
	KindRun         = "run"
	KindMember      = "user"
)

// relation is one extend: the objects of kind target a row names (one)
// or that name it (many).
type relation struct {
	name   string
	target string
	many   bool
}

// relations are the extends of each kind of object.
func relations(kind string) []relation {
	switch kind {
	case KindProvision:
		return []relation{{"node", KindNode, false}, {"runs", KindRun, true}}
	case KindNode:
		return []relation{{"dns_records", KindDNSRecord, true}, {"instances", KindInstance, true}, {"provision", KindProvision, false}}
	case KindInstance, KindDNSRecord:
		return []relation{{"node", KindNode, false}}
	case KindCertificate:
		return []relation{{"node", KindNode, false}, {"user", KindMember, false}}
	}
	return nil
}

// kindPerm is the permission reading objects of kind needs (ssh:sign for
// certificates: ssh:admin also reads them).
func kindPerm(kind string) domain.Permission {
	switch kind {
	case KindProvision, KindRun:
		return domain.PermProvisionRead
	case KindNode, KindInstance:
		return domain.PermNodesRead
	case KindCredential:
		return domain.PermCredentialsRead
	case KindCertificate:
		return domain.PermSSHSign
	case KindDNSRecord:
		return domain.PermDNSRead
	case KindAudit:
		return domain.PermAuditRead
	case KindMember:
		return domain.PermMembersRead
	}
	return ""
}

// MaxExtendDepth is how deep extends nest ("node.instances" is 2).
const MaxExtendDepth = 2

// extendPaths lists the extend paths of kind up to MaxExtendDepth levels,
// leaving out those that walk straight back to where they came from
// (node.provision of a provision request).
func extendPaths(kind string) []string {
	var out []string
	for _, r := range relations(kind) {
		out = append(out, r.name)
		for _, sub := range relations(r.target) {
			if sub.target == kind {
				continue
			}
			out = append(out, r.name+"."+sub.name)
		}
	}
	slices.Sort(out)
	return out
}

// Resources is every searchable resource with its allow-list (built anew
// at each call: no package-level state).
func Resources() []*Resource {
	provStatuses := []string{"pending", "planning", "planned", "applying", "applied", "destroying", "destroyed", "failed"}
	ts := func(name string) Field { return Field{Name: name, Type: Timestamp, Column: "t." + name, Sort: true} }
	id := func(name string) Field { return Field{Name: name, Type: UUID, Column: "t." + name} }
	text := func(name string) Field {
		return Field{Name: name, Type: Text, Column: "t." + name, Search: true, Sort: true}
	}
	num := func(name string) Field { return Field{Name: name, Type: Int, Column: "t." + name, Sort: true} }
	flag := func(name string) Field { return Field{Name: name, Type: Bool, Column: "t." + name} }
	enum := func(name string, values ...string) Field {
		return Field{Name: name, Type: Enum, Column: "t." + name, Values: values, Sort: true}
	}
	rs := []*Resource{
		{
			Name: "provision", Kind: KindProvision, Table: "provision_requests", OrgColumn: "organization_id",
			Perm: domain.PermProvisionRead, DefaultSort: "created_at", DefaultDesc: true,
			Fields: []Field{
				id("id"), id("node_id"), id("credential_id"), text("name"), text("provider"), text("region"),
				text("instance_type"), text("image"), enum("status", provStatuses...), text("error"),
				{Name: "labels", Type: Labels, Column: "t.labels"}, ts("created_at"), ts("updated_at"),
			},
		},
		{
			Name: "nodes", Kind: KindNode, Table: "nodes", OrgColumn: "organization_id",
			Perm: domain.PermNodesRead, DefaultSort: "created_at",
			Fields: []Field{
				id("id"), id("provision_id"), text("name"),
				{Name: "fqdn", Type: Text, Column: "r.name", Search: true,
					Via: "EXISTS (SELECT 1 FROM dns_records r WHERE r.organization_id = t.organization_id AND r.node_id = t.id" +
						" AND r.type IN ('A', 'AAAA') AND r.status <> 'deleted' AND %s)"},
				text("provider"), text("region"), text("instance_type"), text("ipv4"), text("ipv6"), text("server_id"),
				{Name: "status", Type: Enum, Column: "(CASE WHEN t.power_state = 'stopped' THEN 'stopped' ELSE t.status END)",
					Values: []string{"ready", "cordoned", "maintenance", "unreachable", "stopped"}, Sort: true,
					FilterSQL: "((t.status = ANY(?) AND t.power_state <> 'stopped') OR (t.power_state = 'stopped' AND 'stopped' = ANY(?)))"},
				enum("power_state", "running", "stopped"),
				num("vcpu"), num("memory_mb"), num("disk_gb"), num("instance_count"),
				{Name: "labels", Type: Labels, Column: "t.labels"}, ts("created_at"), ts("updated_at"),
			},
		},
		{
			Name: "instances", Kind: KindInstance, Table: "instances", OrgColumn: "organization_id",
			Perm: domain.PermNodesRead, DefaultSort: "created_at",
			Fields: []Field{
				id("id"), id("node_id"), text("name"), text("template"), num("players"),
				num("cpu_millis"), num("memory_mb"), num("disk_gb"), ts("created_at"),
			},
		},
		{
			Name: "credentials", Kind: KindCredential, Table: "credentials", OrgColumn: "organization_id",
			Perm: domain.PermCredentialsRead, DefaultSort: "created_at",
			Fields: []Field{
				id("id"), text("name"), enum("provider", "hetzner", "aws", "cloudflare"), flag("is_default"),
				ts("verified_at"), ts("created_at"), ts("updated_at"),
			},
		},
		{
			Name: "ssh/certificates", Kind: KindCertificate, Table: "ssh_certificates", OrgColumn: "organization_id",
			Perm: domain.PermSSHSign, DefaultSort: "created_at", DefaultDesc: true,
			Fields: []Field{
				id("id"), id("user_id"), id("node_id"), id("ca_key_id"), num("serial"), text("key_id"), text("key_type"),
				text("key_fingerprint"), text("source_address"),
				{Name: "revoked", Type: Bool, Column: "(t.revoked_at IS NOT NULL)"},
				ts("valid_after"), ts("valid_before"), ts("revoked_at"), ts("created_at"),
			},
		},
		{
			Name: "dns/records", Kind: KindDNSRecord, Table: "dns_records", OrgColumn: "organization_id",
			Perm: domain.PermDNSRead, DefaultSort: "created_at",
			Fields: []Field{
				id("id"), id("node_id"), id("credential_id"), text("zone_id"), text("zone_name"),
				enum("type", "A", "AAAA", "CNAME", "TXT", "MX", "SRV", "CAA"), text("name"), text("content"),
				num("ttl"), flag("proxied"), flag("auto"), flag("adopt"),
				enum("status", "pending", "synced", "failed", "deleting", "deleted"),
				ts("synced_at"), ts("created_at"), ts("updated_at"),
			},
		},
		{
			Name: "admin/audit-logs", Kind: KindAudit, Table: "audit_logs", OrgColumn: "organization_id", IntID: true,
			Perm: domain.PermAuditRead, DefaultSort: "created_at", DefaultDesc: true,
			Fields: []Field{
				{Name: "id", Type: Int, Column: "t.id", Sort: true}, id("user_id"), id("api_token_id"), text("action"),
				text("target"), num("status"), text("request_id"), text("ip"), ts("created_at"),
			},
		},
	}
	for _, r := range rs {
		r.Extends = extendPaths(r.Kind)
	}
	return rs
}
