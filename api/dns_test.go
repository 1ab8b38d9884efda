package api_test

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shardform/shardform/dns"
	cffake "github.com/shardform/shardform/internal/fake/cloudflare"
)

// Zones of the local fake of Cloudflare's API (ids as Cloudflare's: 32 hex).
const (
	zoneCom = "023e105f4ecef8ad9ca31a8372d0c353" // example.com
	zoneNet = "5c1a2b3d4e5f60718293a4b5c6d7e8f9" // example.net
	cfToken = "cf-test-token-0123456789abcdef"
)

// dnsBundle is an API serving /v1/dns against a fake Cloudflare, with an
// organization holding a cloudflare credential for it.
type dnsBundle struct {
	*bundle
	cf   *cffake.Fake
	a    account
	cred string
}

func dnsSetup(t *testing.T, o setupOpts) *dnsBundle {
	t.Helper()
	cf := cffake.New(t)
	cf.AddZone(zoneCom, "example.com")
	cf.AddZone(zoneNet, "example.net")
	cf.AddToken(cfToken)
	o.cloudflare = cf.URL
	if o.rateLimit == 0 {
		o.rateLimit = 100000 // the tests poll
	}
	b := setup(t, o)
	a := b.bootstrap("ops@example.com")
	cred := b.createCredential(a.access, "cloudflare", "cloudflare", map[string]string{"api_token": cfToken}).str("id")
	return &dnsBundle{bundle: b, cf: cf, a: a, cred: cred}
}

// create posts a record and expects 202 pending.
func (d *dnsBundle) create(token string, body map[string]any) response {
	d.t.Helper()
	r := d.expect(req{method: "POST", path: "/v1/dns/records", token: token, body: body}, 202)
	if r.str("status") != "pending" || r.str("id") == "" {
		d.t.Fatalf("created %s", r.Raw)
	}
	return r
}

// wait polls a record until it leaves pending and deleting.
func (d *dnsBundle) wait(token, id string) response {
	d.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := d.expect(req{method: "GET", path: "/v1/dns/records/" + id, token: token}, 200)
		if s := r.str("status"); s != "pending" && s != "deleting" {
			return r
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("record %s still %s after 30s: %s", id, r.str("status"), r.Raw)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitSynced waits for a record and fails unless it is synced.
func (d *dnsBundle) waitSynced(token, id string) response {
	d.t.Helper()
	r := d.wait(token, id)
	if r.str("status") != "synced" || r.str("cloudflare_id") == "" {
		d.t.Fatalf("record %s: %s", id, r.Raw)
	}
	return r
}

// cfRecord is the fake's record of that Cloudflare id.
func (d *dnsBundle) cfRecord(zone, id string) (cffake.Record, bool) {
	for _, r := range d.cf.Records(zone) {
		if r.ID == id {
			return r, true
		}
	}
	return cffake.Record{}, false
}

// on is the bundle for a subtest (its helpers fail t).
func (d *dnsBundle) on(t *testing.T) *dnsBundle {
	c := *d
	c.bundle = d.bundle.on(t)
	return &c
}

// waitJobState waits for the record's dns_sync job to reach state (River
// records a cancel just after the outcome), failing on any other final state.
func (d *dnsBundle) waitJobState(recordID, want string) {
	d.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var state string
		if err := d.pool.QueryRow(d.t.Context(), "SELECT state FROM river_job WHERE kind = 'dns_sync' AND args->>'record_id' = $1", recordID).Scan(&state); err != nil {
			d.t.Fatal(err)
		}
		if state == want {
			return
		}
		if state != "running" || time.Now().After(deadline) {
			d.t.Fatalf("job state %s, want %s", state, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func marker(org, record string) string { return "shardform:" + org + ":" + record }

func TestDNSRecordsOfEveryType(t *testing.T) {
	t.Parallel()
	d := dnsSetup(t, setupOpts{})
	for _, tc := range []struct {
		typ          string
		body, update map[string]any
		name         string // fully qualified, as stored
		content      string // Cloudflare's content after create
		updated      string // after the update
	}{
		{"A", map[string]any{"name": "www", "content": "203.0.113.10", "proxied": true}, map[string]any{"content": "203.0.113.11"},
			"www.example.com", "203.0.113.10", "203.0.113.11"},
		{"AAAA", map[string]any{"name": "v6.example.com.", "content": "2001:DB8::1"}, map[string]any{"content": "2001:db8::2", "ttl": 3600},
			"v6.example.com", "2001:db8::1", "2001:db8::2"},
		{"CNAME", map[string]any{"name": "shop", "content": "shops.example.net."}, map[string]any{"content": "store.example.net"},
			"shop.example.com", "shops.example.net", "store.example.net"},
		{"TXT", map[string]any{"name": "@", "content": "v=spf1 -all"}, map[string]any{"content": "v=spf1 include:_spf.example.net -all"},
			"example.com", "v=spf1 -all", "v=spf1 include:_spf.example.net -all"},
		{"MX", map[string]any{"name": "@", "content": "mail.example.com", "priority": 10}, map[string]any{"priority": 20},
			"example.com", "mail.example.com", "mail.example.com"},
		{"SRV", map[string]any{"name": "_minecraft._tcp.mc", "priority": 0, "weight": 5, "port": 25565, "target": "mc.example.com"}, map[string]any{"port": 25566},
			"_minecraft._tcp.mc.example.com", "5 25565 mc.example.com", "5 25566 mc.example.com"},
		{"CAA", map[string]any{"name": "@", "content": `0 issue "letsencrypt.org"`}, map[string]any{"content": `0 issuewild "letsencrypt.org"`},
			"example.com", `0 issue "letsencrypt.org"`, `0 issuewild "letsencrypt.org"`},
	} {
		t.Run(tc.typ, func(t *testing.T) {
			t.Parallel()
			d := d.on(t)
			body := map[string]any{"zone_id": zoneCom, "type": tc.typ}
			for k, v := range tc.body {
				body[k] = v
			}
			id := d.create(d.a.access, body).str("id")
			rec := d.waitSynced(d.a.access, id)
			if rec.str("name") != tc.name || rec.str("content") != tc.content || rec.str("zone_name") != "example.com" {
				t.Fatalf("record %s", rec.Raw)
			}
			cf, ok := d.cfRecord(zoneCom, rec.str("cloudflare_id"))
			if !ok || cf.Type != tc.typ || cf.Name != tc.name || cf.Content != tc.content || cf.Comment != marker(d.a.orgID, id) {
				t.Fatalf("cloudflare has %+v (found %v)", cf, ok)
			}
			if tc.typ == "A" && (!cf.Proxied || cf.TTL != 1 || rec.Body["ttl"] != float64(1)) {
				t.Errorf("A record %+v (%s): want proxied, ttl 1 (automatic)", cf, rec.Raw)
			}
			if (tc.typ == "MX" || tc.typ == "SRV") && cf.Priority == nil {
				t.Errorf("%s record without priority: %+v", tc.typ, cf)
			}

			up := d.expect(req{method: "PUT", path: "/v1/dns/records/" + id, token: d.a.access, body: tc.update}, 202)
			if up.str("status") != "pending" {
				t.Fatalf("update answered %s", up.Raw)
			}
			rec = d.waitSynced(d.a.access, id)
			cf, ok = d.cfRecord(zoneCom, rec.str("cloudflare_id"))
			if !ok || cf.Content != tc.updated || rec.str("content") != tc.updated {
				t.Fatalf("after update: record %s, cloudflare %+v", rec.Raw, cf)
			}
			if tc.typ == "MX" && *cf.Priority != 20 {
				t.Errorf("MX priority %d, want 20", *cf.Priority)
			}

			del := d.expect(req{method: "DELETE", path: "/v1/dns/records/" + id, token: d.a.access}, 202)
			if del.str("status") != "deleting" {
				t.Fatalf("delete answered %s", del.Raw)
			}
			if r := d.wait(d.a.access, id); r.str("status") != "deleted" {
				t.Fatalf("after delete: %s", r.Raw)
			}
			if _, ok := d.cfRecord(zoneCom, rec.str("cloudflare_id")); ok {
				t.Error("the record is still in Cloudflare")
			}
			d.expect(req{method: "DELETE", path: "/v1/dns/records/" + id, token: d.a.access}, 404)
		})
	}
	t.Run("lists", func(t *testing.T) {
		t.Parallel()
		d := d.on(t)
		id := d.create(d.a.access, map[string]any{"zone_id": zoneNet, "type": "A", "name": "list", "content": "198.51.100.7"}).str("id")
		d.waitSynced(d.a.access, id)
		got := d.expect(req{method: "GET", path: "/v1/dns/records?zone=" + zoneNet + "&type=a&status=synced", token: d.a.access}, 200).list()
		if len(got) != 1 || got[0]["id"] != id {
			t.Errorf("filtered list %v", got)
		}
		for name, want := range map[string]int{"list.example.net": 1, "LIST.example.net.": 1, "other.example.net": 0} {
			got := d.expect(req{method: "GET", path: "/v1/dns/records?name=" + name, token: d.a.access}, 200).list()
			if len(got) != want || want == 1 && got[0]["id"] != id {
				t.Errorf("name=%s: %v, want %d", name, got, want)
			}
		}
		zones := d.expect(req{method: "GET", path: "/v1/dns/zones", token: d.a.access}, 200).list()
		if len(zones) != 2 || zones[0]["name"] != "example.com" || zones[0]["status"] != "active" {
			t.Errorf("zones %v", zones)
		}
		d.expect(req{method: "GET", path: "/v1/dns/zones?credential_id=" + d.cred, token: d.a.access}, 200)
		recs := d.expect(req{method: "GET", path: "/v1/dns/zones/" + zoneNet + "/records", token: d.a.access}, 200).list()
		if len(recs) != 1 || recs[0]["managed"] != true || recs[0]["shardform_id"] != id {
			t.Errorf("zone records %v", recs)
		}
	})
}

func TestDNSValidation(t *testing.T) {
	t.Parallel()
	d := dnsSetup(t, setupOpts{})
	// A record the CNAME rule can collide with.
	d.waitSynced(d.a.access, d.create(d.a.access, map[string]any{"zone_id": zoneCom, "type": "A", "name": "taken", "content": "192.0.2.1"}).str("id"))
	n := 0
	base := func(typ string, kv ...any) map[string]any {
		n++
		b := map[string]any{"zone_id": zoneCom, "type": typ, "name": fmt.Sprintf("bad-%d", n)}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(b, kv[i].(string))
				continue
			}
			b[kv[i].(string)] = kv[i+1]
		}
		return b
	}
	for _, tc := range []struct {
		name  string
		body  map[string]any
		field string
	}{
		{"no zone", base("A", "zone_id", nil, "content", "192.0.2.1"), "zone_id"},
		{"zone not an id", base("A", "zone_id", "example.com", "content", "192.0.2.1"), "zone_id"},
		{"unknown type", base("NS", "content", "ns1.example.com"), "type"},
		{"no type", base("A", "type", nil, "content", "192.0.2.1"), "type"},
		{"A with IPv6", base("A", "content", "2001:db8::1"), "content"},
		{"A with a name", base("A", "content", "host.example.com"), "content"},
		{"AAAA with IPv4", base("AAAA", "content", "192.0.2.1"), "content"},
		{"AAAA mapped IPv4", base("AAAA", "content", "::ffff:192.0.2.1"), "content"},
		{"CNAME to an address", base("CNAME", "content", "192.0.2.1"), "content"},
		{"CNAME to one label", base("CNAME", "content", "localhost"), "content"},
		{"MX to an address", base("MX", "content", "192.0.2.1", "priority", 10), "content"},
		{"MX without priority", base("MX", "content", "mail.example.com"), "priority"},
		{"TXT empty", base("TXT", "content", ""), "content"},
		{"name outside the zone", base("A", "name", "www.example.org.", "content", "192.0.2.1"), "name"},
		{"name with a space", base("A", "name", "w w", "content", "192.0.2.1"), "name"},
		{"name label too long", base("A", "name", strings.Repeat("a", 64), "content", "192.0.2.1"), "name"},
		{"name with a leading hyphen", base("A", "name", "-www", "content", "192.0.2.1"), "name"},
		{"empty name", base("A", "name", "", "content", "192.0.2.1"), "name"},
		{"ttl 30", base("A", "content", "192.0.2.1", "ttl", 30), "ttl"},
		{"ttl 0", base("A", "content", "192.0.2.1", "ttl", 0), "ttl"},
		{"ttl over a day", base("A", "content", "192.0.2.1", "ttl", 86401), "ttl"},
		{"proxied with a ttl", base("A", "content", "192.0.2.1", "proxied", true, "ttl", 300), "ttl"},
		{"proxied TXT", base("TXT", "content", "x", "proxied", true), "proxied"},
		{"proxied MX", base("MX", "content", "mail.example.com", "priority", 1, "proxied", true), "proxied"},
		{"priority on A", base("A", "content", "192.0.2.1", "priority", 1), "priority"},
		{"CNAME beside an A", base("CNAME", "name", "taken", "content", "web.example.net"), "name"},
		{"CNAME beside an A, fully qualified", base("CNAME", "name", "taken.example.com", "content", "x.example.net"), "name"},
		{"SRV without priority", base("SRV", "name", "_mc._tcp.x", "weight", 1, "port", 1, "target", "a.example.com"), "priority"},
		{"SRV without weight", base("SRV", "name", "_mc._tcp.x", "priority", 1, "port", 1, "target", "a.example.com"), "weight"},
		{"SRV without port", base("SRV", "name", "_mc._tcp.x", "priority", 1, "weight", 1, "target", "a.example.com"), "port"},
		{"SRV without target", base("SRV", "name", "_mc._tcp.x", "priority", 1, "weight", 1, "port", 1), "target"},
		{"SRV target not a host name", base("SRV", "name", "_mc._tcp.x", "priority", 1, "weight", 1, "port", 1, "target", "not a host!"), "target"},
		{"SRV target not a host name, in content", base("SRV", "name", "_mc._tcp.x", "priority", 1, "content", "1 1 -bad-.example.com"), "target"},
		{"SRV port too big", base("SRV", "name", "_mc._tcp.x", "priority", 1, "weight", 1, "port", 70000, "target", "a.example.com"), "port"},
		{"SRV name without service", base("SRV", "name", "mc", "priority", 1, "weight", 1, "port", 1, "target", "a.example.com"), "name"},
		{"weight on A", base("A", "content", "192.0.2.1", "weight", 1), "weight"},
		{"CAA unknown tag", base("CAA", "content", `0 issuer "ca.example"`), "content"},
		{"CAA without value", base("CAA", "content", `0`), "content"},
		{"credential of another provider", base("A", "content", "192.0.2.1", "credential_id", "PLACEHOLDER"), "credential_id"},
		{"unknown field", base("A", "content", "192.0.2.1", "comment", "mine"), "comment"},
		{"zone of no credential", base("A", "zone_id", strings.Repeat("0", 32), "content", "192.0.2.1"), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := d.on(t)
			if tc.body["credential_id"] == "PLACEHOLDER" {
				tc.body["credential_id"] = d.createCredential(d.a.access, "hz-"+uuid.NewString()[:8], "hetzner", map[string]string{"token": strings.Repeat("h", 64)}).str("id")
			}
			before := d.count("SELECT count(*) FROM dns_records")
			want := 400
			if tc.field == "" {
				want = 404
			}
			r := d.expect(req{method: "POST", path: "/v1/dns/records", token: d.a.access, body: tc.body}, want)
			if tc.field != "" && !strings.HasPrefix(r.errMsg(), tc.field+": ") && !strings.Contains(r.errMsg(), `"`+tc.field+`"`) {
				t.Errorf("error %q does not name %s", r.errMsg(), tc.field)
			}
			if after := d.count("SELECT count(*) FROM dns_records"); after != before {
				t.Errorf("a refused create left a record (%d → %d)", before, after)
			}
		})
	}
	t.Run("update", func(t *testing.T) {
		t.Parallel()
		d := d.on(t)
		id := d.create(d.a.access, map[string]any{"zone_id": zoneCom, "type": "A", "name": "upd", "content": "192.0.2.9"}).str("id")
		d.waitSynced(d.a.access, id)
		for body, field := range map[string]string{`{"content":"nope"}`: "content", `{"ttl":5}`: "ttl", `{"type":"AAAA"}`: "type", `{"zone_id":"` + zoneNet + `"}`: "zone_id", `{"name":"a..b"}`: "name",
			`{"proxied":"yes"}`: "proxied", `{"ttl":"soon"}`: "ttl", `{"proxied":true,"ttl":300}`: "ttl", `{"ttl":90000}`: "ttl"} {
			r := d.expect(req{method: "PUT", path: "/v1/dns/records/" + id, token: d.a.access, body: body}, 400)
			if !strings.Contains(r.errMsg(), field) {
				t.Errorf("PUT %s: %q does not name %s", body, r.errMsg(), field)
			}
		}
		d.expect(req{method: "PUT", path: "/v1/dns/records/" + uuid.NewString(), token: d.a.access, body: `{"ttl":60}`}, 404)
	})
	t.Run("no credential", func(t *testing.T) {
		t.Parallel()
		d := d.on(t)
		o := d.register("nocred@example.com")
		r := d.expect(req{method: "POST", path: "/v1/dns/records", token: o.access, body: map[string]any{"zone_id": zoneCom, "type": "A", "name": "x", "content": "192.0.2.1"}}, 400)
		if !strings.HasPrefix(r.errMsg(), "credential_id: ") {
			t.Errorf("error %q", r.errMsg())
		}
	})
	t.Run("permissions", func(t *testing.T) {
		t.Parallel()
		d := d.on(t)
		read := d.apiToken(d.a, "dns:read")
		d.expect(req{method: "POST", path: "/v1/dns/records", token: read, body: map[string]any{"zone_id": zoneCom, "type": "A", "name": "x", "content": "192.0.2.1"}}, 403)
		d.expect(req{method: "GET", path: "/v1/dns/records", token: read}, 200)
		none := d.apiToken(d.a, "nodes:read")
		d.expect(req{method: "GET", path: "/v1/dns/records", token: none}, 403)
	})
}

func TestDNSForeignRecordsAreNeverTouched(t *testing.T) {
	t.Parallel()
	d := dnsSetup(t, setupOpts{})
	// Records made outside shardform, before shardform first reads the zone.
	foreign := d.cf.Put(zoneCom, cffake.Record{Type: "A", Name: "www.example.com", Content: "203.0.113.5", Comment: "made by hand"})
	otherOrg := d.cf.Put(zoneCom, cffake.Record{Type: "A", Name: "api.example.com", Content: "203.0.113.6",
		Comment: marker(uuid.NewString(), uuid.NewString())})
	cname := d.cf.Put(zoneCom, cffake.Record{Type: "CNAME", Name: "blog.example.com", Content: "blogs.example.net"})

	t.Run("create is 409 naming the record", func(t *testing.T) {
		d := d.on(t)
		r := d.expect(req{method: "POST", path: "/v1/dns/records", token: d.a.access,
			body: map[string]any{"zone_id": zoneCom, "type": "A", "name": "www", "content": "198.51.100.1"}}, 409)
		if !strings.Contains(r.errMsg(), foreign) || !strings.Contains(r.errMsg(), "adopt") {
			t.Errorf("409 %q does not name %s", r.errMsg(), foreign)
		}
		r = d.expect(req{method: "POST", path: "/v1/dns/records", token: d.a.access,
			body: map[string]any{"zone_id": zoneCom, "type": "A", "name": "blog", "content": "198.51.100.1"}}, 400)
		if !strings.HasPrefix(r.errMsg(), "name: ") || !strings.Contains(r.errMsg(), cname) {
			t.Errorf("A beside a foreign CNAME: %q", r.errMsg())
		}
		// Another organization's record is never adopted.
		r = d.expect(req{method: "POST", path: "/v1/dns/records", token: d.a.access,
			body: map[string]any{"zone_id": zoneCom, "type": "A", "name": "api", "content": "198.51.100.1", "adopt": true}}, 409)
		if !strings.Contains(r.errMsg(), otherOrg) || !strings.Contains(r.errMsg(), "another organization") {
			t.Errorf("adopting another organization's record: %q", r.errMsg())
		}
		if got, _ := d.cfRecord(zoneCom, foreign); got.Content != "203.0.113.5" || got.Comment != "made by hand" {
			t.Errorf("the foreign record changed: %+v", got)
		}
	})

	t.Run("the zone's records say which are managed", func(t *testing.T) {
		d := d.on(t)
		recs := d.expect(req{method: "GET", path: "/v1/dns/zones/" + zoneCom + "/records", token: d.a.access}, 200).list()
		if len(recs) != 3 {
			t.Fatalf("zone records %v", recs)
		}
		for _, r := range recs {
			if r["managed"] != false || r["shardform_id"] != nil {
				t.Errorf("foreign record shown managed: %v", r)
			}
		}
	})

	t.Run("adopt takes it over", func(t *testing.T) {
		d := d.on(t)
		id := d.create(d.a.access, map[string]any{"zone_id": zoneCom, "type": "A", "name": "www", "content": "198.51.100.2", "adopt": true}).str("id")
		rec := d.waitSynced(d.a.access, id)
		if rec.str("cloudflare_id") != foreign || rec.Body["adopt"] != false {
			t.Fatalf("adopted record %s", rec.Raw)
		}
		got, _ := d.cfRecord(zoneCom, foreign)
		if got.Content != "198.51.100.2" || got.Comment != marker(d.a.orgID, id) {
			t.Errorf("after adopt Cloudflare has %+v", got)
		}
		if n := len(d.cf.Find(zoneCom, "www.example.com", "A")); n != 1 {
			t.Errorf("%d A records for www after adopt, want 1", n)
		}
	})

	t.Run("a rename onto a foreign or CNAME name is refused", func(t *testing.T) {
		d := d.on(t)
		id := d.create(d.a.access, map[string]any{"zone_id": zoneCom, "type": "A", "name": "ren", "content": "198.51.100.3"}).str("id")
		d.waitSynced(d.a.access, id)
		r := d.expect(req{method: "PUT", path: "/v1/dns/records/" + id, token: d.a.access, body: map[string]any{"name": "api"}}, 409)
		if !strings.Contains(r.errMsg(), otherOrg) {
			t.Errorf("rename onto another organization's record: %q", r.errMsg())
		}
		r = d.expect(req{method: "PUT", path: "/v1/dns/records/" + id, token: d.a.access, body: map[string]any{"name": "blog.example.com"}}, 400)
		if !strings.HasPrefix(r.errMsg(), "name: ") || !strings.Contains(r.errMsg(), cname) {
			t.Errorf("rename onto a foreign CNAME's name: %q", r.errMsg())
		}
		if rec := d.expect(req{method: "GET", path: "/v1/dns/records/" + id, token: d.a.access}, 200); rec.str("name") != "ren.example.com" || rec.str("status") != "synced" {
			t.Errorf("the refused renames changed the record: %s", rec.Raw)
		}
		if got, _ := d.cfRecord(zoneCom, otherOrg); got.Content != "203.0.113.6" {
			t.Errorf("the other organization's record changed: %+v", got)
		}
	})

	t.Run("a record whose marker was removed is not updated or deleted", func(t *testing.T) {
		d := d.on(t)
		id := d.create(d.a.access, map[string]any{"zone_id": zoneCom, "type": "TXT", "name": "owner", "content": "mine"}).str("id")
		cfID := d.waitSynced(d.a.access, id).str("cloudflare_id")
		d.cf.Change(zoneCom, cfID, func(r *cffake.Record) { r.Comment = "taken over by hand" })
		d.expect(req{method: "PUT", path: "/v1/dns/records/" + id, token: d.a.access, body: map[string]any{"content": "changed"}}, 202)
		rec := d.wait(d.a.access, id)
		if rec.str("status") != "failed" || !strings.Contains(rec.str("error"), "not touched") {
			t.Fatalf("update of an unmarked record: %s", rec.Raw)
		}
		if got, _ := d.cfRecord(zoneCom, cfID); got.Content != "mine" || got.Comment != "taken over by hand" {
			t.Errorf("Cloudflare record changed: %+v", got)
		}
		d.expect(req{method: "DELETE", path: "/v1/dns/records/" + id, token: d.a.access}, 202)
		rec = d.wait(d.a.access, id)
		if rec.str("status") != "deleted" || !strings.Contains(rec.str("error"), "left in Cloudflare") {
			t.Fatalf("delete of an unmarked record: %s", rec.Raw)
		}
		if _, ok := d.cfRecord(zoneCom, cfID); !ok {
			t.Error("the unmarked record was deleted from Cloudflare")
		}
	})
}

func TestDNSOrganizationsSharingAZone(t *testing.T) {
	t.Parallel()
	d := dnsSetup(t, setupOpts{})
	id := d.create(d.a.access, map[string]any{"zone_id": zoneCom, "type": "A", "name": "game", "content": "192.0.2.50"}).str("id")
	cfID := d.waitSynced(d.a.access, id).str("cloudflare_id")

	other := d.register("other@example.com")
	tok := "cf-other-token-0123456789abcdef"
	d.cf.AddToken(tok)
	d.createCredential(other.access, "cf", "cloudflare", map[string]string{"api_token": tok})

	if got := d.expect(req{method: "GET", path: "/v1/dns/records", token: other.access}, 200).list(); len(got) != 0 {
		t.Errorf("another organization lists %v", got)
	}
	d.expect(req{method: "GET", path: "/v1/dns/records/" + id, token: other.access}, 404)
	d.expect(req{method: "PUT", path: "/v1/dns/records/" + id, token: other.access, body: map[string]any{"content": "192.0.2.99"}}, 404)
	d.expect(req{method: "DELETE", path: "/v1/dns/records/" + id, token: other.access}, 404)
	r := d.expect(req{method: "POST", path: "/v1/dns/records", token: other.access,
		body: map[string]any{"zone_id": zoneCom, "type": "A", "name": "game", "content": "192.0.2.99", "adopt": true}}, 409)
	if !strings.Contains(r.errMsg(), cfID) {
		t.Errorf("409 %q does not name %s", r.errMsg(), cfID)
	}
	for _, z := range d.expect(req{method: "GET", path: "/v1/dns/zones/" + zoneCom + "/records", token: other.access}, 200).list() {
		if z["managed"] != false {
			t.Errorf("the other organization sees %v as managed", z)
		}
	}
	// Its own record beside, and its reconcile, leave the first one alone.
	mine := d.create(other.access, map[string]any{"zone_id": zoneCom, "type": "A", "name": "game2", "content": "192.0.2.51"}).str("id")
	d.waitSynced(other.access, mine)
	d.expect(req{method: "POST", path: "/v1/dns/reconcile", token: other.access}, 202)
	rep := d.waitReconcile(other.access, "")
	zones := rep.Body["zones"].([]any)
	z := zones[0].(map[string]any)
	if z["managed"] != float64(1) || z["foreign"] != float64(1) || len(z["recreated"].([]any)) != 0 {
		t.Errorf("the other organization's reconcile: %s", rep.Raw)
	}
	got, _ := d.cfRecord(zoneCom, cfID)
	if got.Content != "192.0.2.50" || got.Comment != marker(d.a.orgID, id) {
		t.Errorf("the first organization's record changed: %+v", got)
	}
	d.expect(req{method: "GET", path: "/v1/dns/auto-config", token: other.access}, 200)
}

// waitReconcile polls GET /v1/dns/reconcile until a report newer than after.
func (d *dnsBundle) waitReconcile(token, after string) response {
	d.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := d.do(req{method: "GET", path: "/v1/dns/reconcile", token: token})
		if r.Status == 200 && r.str("finished_at") > after {
			return r
		}
		if r.Status != 200 && r.Status != 404 {
			d.t.Fatalf("GET /v1/dns/reconcile: %d %s", r.Status, r.Raw)
		}
		if time.Now().After(deadline) {
			d.t.Fatal("no reconcile report after 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestDNSReconcileRepairsDrift(t *testing.T) {
	t.Parallel()
	d := dnsSetup(t, setupOpts{})
	d.expect(req{method: "GET", path: "/v1/dns/reconcile", token: d.a.access}, 404)
	gone := d.create(d.a.access, map[string]any{"zone_id": zoneCom, "type": "A", "name": "gone", "content": "192.0.2.10"}).str("id")
	changed := d.create(d.a.access, map[string]any{"zone_id": zoneCom, "type": "A", "name": "changed", "content": "192.0.2.11", "ttl": 120}).str("id")
	kept := d.create(d.a.access, map[string]any{"zone_id": zoneCom, "type": "TXT", "name": "kept", "content": "ok"}).str("id")
	goneCF := d.waitSynced(d.a.access, gone).str("cloudflare_id")
	changedCF := d.waitSynced(d.a.access, changed).str("cloudflare_id")
	d.waitSynced(d.a.access, kept)
	foreign := d.cf.Put(zoneCom, cffake.Record{Type: "A", Name: "hand.example.com", Content: "192.0.2.99"})

	d.cf.Delete(zoneCom, goneCF)
	d.cf.Change(zoneCom, changedCF, func(r *cffake.Record) { r.Content, r.TTL = "192.0.2.66", 60 })
	job := d.expect(req{method: "POST", path: "/v1/dns/reconcile", token: d.a.access}, 202)
	if job.str("kind") != "dns_reconcile" {
		t.Fatalf("reconcile answered %s", job.Raw)
	}
	rep := d.waitReconcile(d.a.access, "")
	z := rep.Body["zones"].([]any)[0].(map[string]any)
	if z["managed"] != float64(3) || z["in_sync"] != float64(1) || z["foreign"] != float64(1) {
		t.Fatalf("report %s", rep.Raw)
	}
	if rc := z["recreated"].([]any); len(rc) != 1 || rc[0].(map[string]any)["record_id"] != gone {
		t.Errorf("recreated %v", rc)
	}
	rp := z["repaired"].([]any)
	if len(rp) != 1 || rp[0].(map[string]any)["record_id"] != changed ||
		!strings.Contains(fmt.Sprint(rp[0].(map[string]any)["changes"]), "content: 192.0.2.66 → 192.0.2.11") {
		t.Errorf("repaired %v", rp)
	}
	if fr := z["foreign_records"].([]any); len(fr) != 1 || fr[0].(map[string]any)["id"] != foreign {
		t.Errorf("foreign %v", fr)
	}
	// Cloudflare holds the desired records again; the foreign one is as it was.
	recs := d.cf.Find(zoneCom, "gone.example.com", "A")
	if len(recs) != 1 || recs[0].Content != "192.0.2.10" || recs[0].Comment != marker(d.a.orgID, gone) {
		t.Errorf("recreated record %+v", recs)
	}
	if r := d.expect(req{method: "GET", path: "/v1/dns/records/" + gone, token: d.a.access}, 200); r.str("cloudflare_id") != recs[0].ID {
		t.Errorf("record's cloudflare id %s, want %s", r.str("cloudflare_id"), recs[0].ID)
	}
	if got, _ := d.cfRecord(zoneCom, changedCF); got.Content != "192.0.2.11" || got.TTL != 120 {
		t.Errorf("repaired record %+v", got)
	}
	if got, _ := d.cfRecord(zoneCom, foreign); got.Content != "192.0.2.99" {
		t.Errorf("foreign record %+v", got)
	}
	// The audit log says what was set back.
	entries := d.expect(req{method: "GET", path: "/v1/admin/audit-logs?limit=100", token: d.a.access}, 200).list()
	actions := map[string]string{}
	for _, e := range entries {
		actions[e["action"].(string)] += e["target"].(string) + "\n"
	}
	if !strings.Contains(actions["dns.reconcile.repair"], changed) || !strings.Contains(actions["dns.reconcile.repair"], "192.0.2.66 → 192.0.2.11") ||
		!strings.Contains(actions["dns.reconcile.recreate"], gone) || !strings.Contains(actions["POST /v1/dns/records"], kept) {
		t.Errorf("audit log %v", actions)
	}
	// A second reconcile finds nothing to do (once the first job is done,
	// a POST queues a new one).
	for d.expect(req{method: "POST", path: "/v1/dns/reconcile", token: d.a.access}, 202).Body["duplicate"] == true {
		time.Sleep(20 * time.Millisecond)
	}
	rep = d.waitReconcile(d.a.access, rep.str("finished_at"))
	z = rep.Body["zones"].([]any)[0].(map[string]any)
	if z["in_sync"] != float64(3) || len(z["recreated"].([]any))+len(z["repaired"].([]any)) != 0 || rep.Body["calls"] != float64(1) {
		t.Errorf("second reconcile %s", rep.Raw)
	}
	// A change and a delete through the API are in the audit log too.
	d.expect(req{method: "PUT", path: "/v1/dns/records/" + kept, token: d.a.access, body: map[string]any{"content": "still ok"}}, 202)
	d.waitSynced(d.a.access, kept)
	d.expect(req{method: "DELETE", path: "/v1/dns/records/" + kept, token: d.a.access}, 202)
	d.wait(d.a.access, kept)
	audited := map[string]bool{}
	for _, e := range d.expect(req{method: "GET", path: "/v1/admin/audit-logs?limit=100", token: d.a.access}, 200).list() {
		if strings.Contains(e["target"].(string), kept) && e["status"] == float64(202) {
			audited[e["action"].(string)] = true
		}
	}
	if !audited["PUT /v1/dns/records/:id"] || !audited["DELETE /v1/dns/records/:id"] {
		t.Errorf("audit entries of the record's PUT and DELETE: %v", audited)
	}
}

func TestDNSCredentialInUseIsKept(t *testing.T) {
	t.Parallel()
	d := dnsSetup(t, setupOpts{})
	id := d.create(d.a.access, map[string]any{"zone_id": zoneCom, "type": "A", "name": "kept", "content": "192.0.2.30"}).str("id")
	d.waitSynced(d.a.access, id)
	r := d.expect(req{method: "DELETE", path: "/v1/credentials/" + d.cred, token: d.a.access}, 409)
	if !strings.Contains(r.errMsg(), "1 DNS records") {
		t.Errorf("409 %q", r.errMsg())
	}
	d.expect(req{method: "DELETE", path: "/v1/dns/records/" + id, token: d.a.access}, 202)
	d.wait(d.a.access, id)
	d.expect(req{method: "PUT", path: "/v1/dns/auto-config", token: d.a.access, body: map[string]any{"enabled": true, "zone_id": zoneCom}}, 200)
	if r := d.expect(req{method: "DELETE", path: "/v1/credentials/" + d.cred, token: d.a.access}, 409); !strings.Contains(r.errMsg(), "auto-DNS") {
		t.Errorf("409 %q", r.errMsg())
	}
	d.expect(req{method: "PUT", path: "/v1/dns/auto-config", token: d.a.access, body: map[string]any{"enabled": false}}, 200)
	d.expect(req{method: "DELETE", path: "/v1/credentials/" + d.cred, token: d.a.access}, 204)
}

func TestDNSPeriodicReconcile(t *testing.T) {
	t.Parallel()
	d := dnsSetup(t, setupOpts{dnsReconcile: time.Second})
	id := d.create(d.a.access, map[string]any{"zone_id": zoneCom, "type": "A", "name": "periodic", "content": "192.0.2.20"}).str("id")
	d.cf.Delete(zoneCom, d.waitSynced(d.a.access, id).str("cloudflare_id"))
	// No POST: the periodic fan-out queues the organization's reconcile.
	deadline := time.Now().Add(60 * time.Second)
	for len(d.cf.Find(zoneCom, "periodic.example.com", "A")) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the deleted record was not recreated by the periodic reconcile")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Later runs find it in sync; the audit log keeps the repair (written
	// just after Cloudflare's create, with the record's new id).
	for found := false; !found; time.Sleep(50 * time.Millisecond) {
		for _, e := range d.expect(req{method: "GET", path: "/v1/admin/audit-logs?limit=100", token: d.a.access}, 200).list() {
			found = found || e["action"] == "dns.reconcile.recreate" && strings.HasPrefix(e["target"].(string), id)
		}
		if !found && time.Now().After(deadline) {
			t.Fatal("no dns.reconcile.recreate audit entry for the record")
		}
	}
}

func TestDNSRateLimitAndOutages(t *testing.T) {
	t.Parallel()
	d := dnsSetup(t, setupOpts{})
	// Warm the zone list and copy so the record's job makes the calls.
	d.waitSynced(d.a.access, d.create(d.a.access, map[string]any{"zone_id": zoneCom, "type": "A", "name": "warm", "content": "192.0.2.1"}).str("id"))

	t.Run("429 then success", func(t *testing.T) {
		d := d.on(t)
		before := d.cf.CallsOf("create_record")
		d.cf.FailNext(1, "create_record", 429, 2*time.Second)
		id := d.create(d.a.access, map[string]any{"zone_id": zoneCom, "type": "A", "name": "limited", "content": "192.0.2.2"}).str("id")
		rec := d.waitSynced(d.a.access, id)
		// The retry waited for Retry-After (the bound: not before it).
		created, err1 := time.Parse(time.RFC3339Nano, rec.str("created_at"))
		synced, err2 := time.Parse(time.RFC3339Nano, rec.str("synced_at"))
		if err1 != nil || err2 != nil || synced.Sub(created) < 2*time.Second {
			t.Errorf("synced %v after the create (%v, %v), want at least Retry-After (2s)", synced.Sub(created), err1, err2)
		}
		if n := d.cf.CallsOf("create_record") - before; n != 2 {
			t.Errorf("%d create calls, want 2 (one refused with 429)", n)
		}
		if rec.str("error") != "" {
			t.Errorf("synced record keeps an error: %s", rec.Raw)
		}
		// A snooze is not an attempt.
		var attempt int
		if err := d.pool.QueryRow(t.Context(), "SELECT attempt FROM river_job WHERE kind = 'dns_sync' AND args->>'record_id' = $1", id).Scan(&attempt); err != nil || attempt != 1 {
			t.Errorf("job attempt %d (%v), want 1", attempt, err)
		}
	})
	t.Run("5xx then success", func(t *testing.T) {
		d := d.on(t)
		d.cf.FailNext(1, "create_record", 502, 0)
		id := d.create(d.a.access, map[string]any{"zone_id": zoneCom, "type": "A", "name": "outage", "content": "192.0.2.3"}).str("id")
		d.waitSynced(d.a.access, id)
	})
	t.Run("a token refused the zone (403) fails the record and cancels the job", func(t *testing.T) {
		d := d.on(t)
		d.cf.AddToken(cfToken, zoneNet) // the token loses example.com (the zone list is still cached)
		defer d.cf.AddToken(cfToken)
		id := d.create(d.a.access, map[string]any{"zone_id": zoneCom, "type": "A", "name": "forbidden", "content": "192.0.2.5"}).str("id")
		rec := d.wait(d.a.access, id)
		if rec.str("status") != "failed" || !strings.Contains(rec.str("error"), "Authentication error (10000)") {
			t.Fatalf("record %s", rec.Raw)
		}
		d.waitJobState(id, "cancelled")
		if n := len(d.cf.Find(zoneCom, "forbidden.example.com", "A")); n != 0 {
			t.Errorf("%d records made with a refused token", n)
		}
	})
	t.Run("a revoked token fails the record with Cloudflare's message", func(t *testing.T) {
		d := d.on(t)
		d.cf.RevokeToken(cfToken)
		id := d.create(d.a.access, map[string]any{"zone_id": zoneCom, "type": "A", "name": "revoked", "content": "192.0.2.4"}).str("id")
		rec := d.wait(d.a.access, id)
		if rec.str("status") != "failed" || !strings.Contains(rec.str("error"), "Invalid API Token (1000)") {
			t.Fatalf("record %s", rec.Raw)
		}
		d.waitJobState(id, "cancelled")
		// Reading zones with the revoked token is Cloudflare's refusal, 422.
		r := d.expect(req{method: "GET", path: "/v1/dns/zones/" + zoneCom + "/records", token: d.a.access}, 422)
		if !strings.Contains(r.errMsg(), "Invalid API Token") {
			t.Errorf("422 %q", r.errMsg())
		}
	})
}

func TestDNSAutoConfig(t *testing.T) {
	t.Parallel()
	d := dnsSetup(t, setupOpts{})
	got := d.expect(req{method: "GET", path: "/v1/dns/auto-config", token: d.a.access}, 200)
	if got.Body["enabled"] != false || got.str("name_template") != "{name}" || got.Body["ipv6"] != true {
		t.Errorf("default auto-config %s", got.Raw)
	}
	for body, field := range map[string]string{
		`{"enabled":true}`: "zone_id",
		`{"enabled":true,"zone_id":"` + zoneCom + `","name_template":"{name}.{nope}"}`: "name_template",
		`{"enabled":true,"zone_id":"` + zoneCom + `","name_template":"{name}..x"}`:     "name_template",
		`{"enabled":true,"zone_id":"` + zoneCom + `","ttl":7}`:                         "ttl",
		`{"enabled":true,"zone_id":"nope"}`:                                            "zone_id",
	} {
		r := d.expect(req{method: "PUT", path: "/v1/dns/auto-config", token: d.a.access, body: body}, 400)
		if !strings.HasPrefix(r.errMsg(), field+": ") {
			t.Errorf("PUT %s: %q does not name %s", body, r.errMsg(), field)
		}
	}
	put := d.expect(req{method: "PUT", path: "/v1/dns/auto-config", token: d.a.access,
		body: map[string]any{"enabled": true, "zone_id": zoneCom, "name_template": "{name}.{region}.nodes", "ttl": 300}}, 200)
	if put.str("zone_name") != "example.com" || put.str("credential_id") != d.cred || put.Body["ttl"] != float64(300) {
		t.Errorf("auto-config %s", put.Raw)
	}
	r := d.expect(req{method: "PUT", path: "/v1/dns/auto-config", token: d.a.access,
		body: map[string]any{"enabled": true, "zone_id": zoneCom, "proxied": true, "ttl": 300}}, 400)
	if !strings.HasPrefix(r.errMsg(), "ttl: ") {
		t.Errorf("proxied auto-DNS with ttl 300: %q", r.errMsg())
	}
	// The change is in the audit log (the refused ones are not).
	n := 0
	for _, e := range d.expect(req{method: "GET", path: "/v1/admin/audit-logs?limit=100", token: d.a.access}, 200).list() {
		if e["action"] == "PUT /v1/dns/auto-config" && e["status"] == float64(200) {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d audit entries of PUT /v1/dns/auto-config, want 1", n)
	}
}

func TestDNSAutoDNSForProvisionedNodes(t *testing.T) {
	t.Parallel()
	d := dnsSetup(t, setupOpts{provisioning: true})
	d.expect(req{method: "PUT", path: "/v1/dns/auto-config", token: d.a.access,
		body: map[string]any{"enabled": true, "zone_id": zoneCom, "name_template": "{name}.nodes"}}, 200)
	// web-2's name is taken by a record shardform does not manage.
	taken := d.cf.Put(zoneCom, cffake.Record{Type: "A", Name: "web-2.nodes.example.com", Content: "203.0.113.2"})

	apply := func(name string) string {
		id := d.expect(req{method: "POST", path: "/v1/provision", token: d.a.access, body: localBody(name)}, 201).str("id")
		d.expect(req{method: "POST", path: "/v1/provision/" + id + "/plan", token: d.a.access}, 202)
		if r := d.waitStatus(d.a.access, id); r.str("status") != "planned" {
			t.Fatalf("plan: %s", r.Raw)
		}
		d.expect(req{method: "POST", path: "/v1/provision/" + id + "/apply", token: d.a.access}, 202)
		if r := d.waitStatus(d.a.access, id); r.str("status") != "applied" {
			t.Fatalf("apply: %s", r.Raw)
		}
		return id
	}
	web1 := apply("web-1")
	web2 := apply("web-2") // applied although its record cannot be made

	nodes := d.expect(req{method: "GET", path: "/v1/nodes", token: d.a.access}, 200).list()
	if len(nodes) != 2 {
		t.Fatalf("nodes %v", nodes)
	}
	byName := map[string]map[string]any{}
	for _, n := range nodes {
		byName[n["name"].(string)] = n
	}
	// Each node has an A and an AAAA record (the local driver's node has
	// 127.0.0.1 and ::1).
	records := func(n map[string]any) map[string]response {
		out := map[string]response{}
		ids, _ := n["dns_record_ids"].([]any)
		for _, id := range ids {
			r := d.wait(d.a.access, id.(string))
			out[r.str("type")] = r
		}
		if len(out) != 2 {
			t.Fatalf("node %v has records %v", n["name"], ids)
		}
		return out
	}
	n1 := byName["web-1"]
	if n1["fqdn"] != "web-1.nodes.example.com" {
		t.Fatalf("node %v", n1)
	}
	recs1 := records(n1)
	for typ, content := range map[string]string{"A": "127.0.0.1", "AAAA": "::1"} {
		rec := recs1[typ]
		if rec.str("status") != "synced" || rec.str("content") != content || rec.Body["auto"] != true || rec.str("node_id") != n1["id"] {
			t.Errorf("auto %s record %s", typ, rec.Raw)
		}
		cf := d.cf.Find(zoneCom, "web-1.nodes.example.com", typ)
		if len(cf) != 1 || cf[0].Content != content || cf[0].Comment != marker(d.a.orgID, rec.str("id")) {
			t.Errorf("Cloudflare has %+v", cf)
		}
	}
	one := d.expect(req{method: "GET", path: "/v1/nodes/" + n1["id"].(string), token: d.a.access}, 200)
	if one.str("fqdn") != "web-1.nodes.example.com" {
		t.Errorf("GET node %s", one.Raw)
	}
	byNode := d.expect(req{method: "GET", path: "/v1/dns/records?node=" + n1["id"].(string), token: d.a.access}, 200).list()
	if len(byNode) != 2 {
		t.Errorf("records of the node %v", byNode)
	}

	recs2 := records(byName["web-2"])
	if r := recs2["A"]; r.str("status") != "failed" || !strings.Contains(r.str("error"), taken) {
		t.Errorf("web-2's A record %s", r.Raw)
	}
	if r := recs2["AAAA"]; r.str("status") != "synced" {
		t.Errorf("web-2's AAAA record %s", r.Raw)
	}
	if got, _ := d.cfRecord(zoneCom, taken); got.Content != "203.0.113.2" || got.Comment != "" {
		t.Errorf("the foreign record changed: %+v", got)
	}

	// An SRV record pointing at the node by its name.
	srv := d.create(d.a.access, map[string]any{"zone_id": zoneCom, "type": "SRV", "name": "_minecraft._tcp.mc", "priority": 0, "weight": 5,
		"port": 25565, "node_id": n1["id"]}).str("id")
	if r := d.waitSynced(d.a.access, srv); r.str("content") != "5 25565 web-1.nodes.example.com" {
		t.Errorf("SRV %s", r.Raw)
	}

	// Destroying the node deletes its record.
	d.expect(req{method: "DELETE", path: "/v1/provision/" + web1, token: d.a.access}, 202)
	if r := d.waitStatus(d.a.access, web1); r.str("status") != "destroyed" {
		t.Fatalf("destroy: %s", r.Raw)
	}
	for _, rec := range recs1 {
		if r := d.wait(d.a.access, rec.str("id")); r.str("status") != "deleted" {
			t.Errorf("after destroy the record is %s", r.Raw)
		}
	}
	if cf := append(d.cf.Find(zoneCom, "web-1.nodes.example.com", "A"), d.cf.Find(zoneCom, "web-1.nodes.example.com", "AAAA")...); len(cf) != 0 {
		t.Errorf("Cloudflare still has %+v", cf)
	}
	d.expect(req{method: "DELETE", path: "/v1/provision/" + web2, token: d.a.access}, 202)
	d.waitStatus(d.a.access, web2)
	if got, _ := d.cfRecord(zoneCom, taken); got.Content != "203.0.113.2" {
		t.Errorf("destroying web-2 touched the foreign record: %+v", got)
	}
	// The audit log has the auto-DNS changes.
	audit := d.expect(req{method: "GET", path: "/v1/admin/audit-logs?limit=100", token: d.a.access}, 200).list()
	seen := map[string]bool{}
	for _, e := range audit {
		seen[e["action"].(string)] = true
	}
	if !seen["dns.auto.create"] || !seen["dns.auto.delete"] {
		t.Errorf("audit actions %v", seen)
	}
}

// The package's own constants agree with what the API documents.
var _ = dns.QueueDNS

// TestDNSCreateDuringACloudflareOutage: with the zone's copy older than
// its age and Cloudflare answering 5xx, POST /v1/dns/records checks the
// older copy and answers 202 (the worker lists the name before creating);
// a zone never read answers 503.
func TestDNSCreateDuringACloudflareOutage(t *testing.T) {
	t.Parallel()
	var skew atomic.Int64
	d := dnsSetup(t, setupOpts{dns: dns.Options{Now: func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }}})
	d.waitSynced(d.a.access, d.create(d.a.access, map[string]any{"zone_id": zoneCom, "type": "A", "name": "before", "content": "192.0.2.50"}).str("id"))
	skew.Store(int64(10 * time.Minute)) // the zone list and the copy are too old
	d.cf.FailNext(1, "list_zones", 502, 0)
	d.cf.FailNext(1, "list_records", 503, 0)
	id := d.create(d.a.access, map[string]any{"zone_id": zoneCom, "type": "A", "name": "during", "content": "192.0.2.51"}).str("id")
	d.waitSynced(d.a.access, id)
	if got := d.cf.Find(zoneCom, "during.example.com", "A"); len(got) != 1 {
		t.Errorf("Cloudflare has %+v", got)
	}
	d.cf.FailNext(1, "list_zones", 502, 0)
	d.cf.FailNext(1, "list_records", 502, 0)
	r := d.expect(req{method: "POST", path: "/v1/dns/records", token: d.a.access,
		body: map[string]any{"zone_id": zoneNet, "type": "A", "name": "never", "content": "192.0.2.52"}}, 503)
	if !strings.Contains(r.errMsg(), "try again later") {
		t.Errorf("503 %q", r.errMsg())
	}
}
