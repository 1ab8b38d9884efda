package api_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"golang.org/x/crypto/ssh"

	"github.com/shardform/shardform/agent"
	"github.com/shardform/shardform/store"
)

// hostKey is a fresh Ed25519 host public key (authorized_keys format).
func hostKey(t *testing.T) string {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))
}

// regToken mints a registration token of a's organization.
func (b *bundle) regToken(a account, body map[string]any) response {
	b.t.Helper()
	if body == nil {
		body = map[string]any{}
	}
	return b.expect(req{method: "POST", path: "/v1/nodes/register-token", token: a.access, body: body}, 201)
}

func registerBody(hostname string, keys ...string) map[string]any {
	return map[string]any{"hostname": hostname, "host_public_keys": keys, "ipv4": "192.0.2.10",
		"facts": map[string]any{"os": "Debian GNU/Linux 13", "kernel": "6.12.0", "arch": "amd64", "cpus": 4, "memory_mib": 8192, "disk_gib": 80}}
}

// joined registers a node with a fresh token and answers the registration.
func (b *bundle) joined(a account, hostname string) response {
	b.t.Helper()
	tok := b.regToken(a, nil).str("token")
	return b.expect(req{method: "POST", path: "/v1/agent/register", token: tok, body: registerBody(hostname, hostKey(b.t))}, 201)
}

func agentHeader(token string) map[string]string { return map[string]string{"X-Agent-Token": token} }

func TestAgentRegistrationTokens(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{ssh: true})
	a := b.bootstrap("ops@example.com")
	viewer := b.register("viewer@example.com")

	tok := b.regToken(a, map[string]any{"name": "metal-1", "labels": map[string]string{"rack": "r1"}})
	secret := tok.str("token")
	if !strings.HasPrefix(secret, "shardform_reg_") || !strings.HasPrefix(secret, tok.str("prefix")) || tok.Body["uses_allowed"] != float64(1) {
		t.Fatalf("token %s", tok.Raw)
	}
	if n := b.count(`SELECT count(*) FROM node_registration_tokens WHERE token_hash = sha256($1::bytea)`, secret); n != 1 {
		t.Errorf("token not stored hashed (%d rows match its hash)", n)
	}
	// Without expires_in it is valid for an hour from its creation.
	notBefore, err1 := time.Parse(time.RFC3339Nano, tok.str("not_before"))
	expires, err2 := time.Parse(time.RFC3339Nano, tok.str("expires_at"))
	if err1 != nil || err2 != nil || expires.Sub(notBefore) != time.Hour {
		t.Errorf("default window %s .. %s (%v %v), want one hour", tok.str("not_before"), tok.str("expires_at"), err1, err2)
	}
	listed := b.expect(req{method: "GET", path: "/v1/nodes/register-tokens", token: a.access}, 200)
	if l := listed.list(); len(l) != 1 || l[0]["token"] != nil || l[0]["name"] != "metal-1" {
		t.Errorf("list %s", listed.Raw)
	}
	if strings.Contains(string(listed.Raw), secret) {
		t.Error("the list shows the secret")
	}
	// Another organization sees none of it and cannot delete it.
	if l := b.expect(req{method: "GET", path: "/v1/nodes/register-tokens", token: viewer.access}, 200).list(); len(l) != 0 {
		t.Errorf("other organization sees %v", l)
	}
	b.expect(req{method: "DELETE", path: "/v1/nodes/register-tokens/" + tok.str("id"), token: viewer.access}, 404)

	for _, tt := range []struct {
		name string
		body map[string]any
	}{
		{"expiry too long", map[string]any{"expires_in": 8 * 24 * 3600}},
		{"expiry too short", map[string]any{"expires_in": 1}},
		{"no uses", map[string]any{"uses": 0}},
		{"bad label", map[string]any{"labels": map[string]string{"bad key!": "x"}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b.expect(req{method: "POST", path: "/v1/nodes/register-token", token: a.access, body: tt.body}, 400)
		})
	}

	b.expect(req{method: "DELETE", path: "/v1/nodes/register-tokens/" + tok.str("id"), token: a.access}, 204)
	b.expect(req{method: "POST", path: "/v1/agent/register", token: secret, body: registerBody("metal-1", hostKey(t))}, 401)
	b.expect(req{method: "DELETE", path: "/v1/nodes/register-tokens/" + tok.str("id"), token: a.access}, 404)
}

func TestAgentRegister(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{ssh: true})
	a := b.bootstrap("ops@example.com")
	tok := b.regToken(a, map[string]any{"labels": map[string]string{"rack": "r1"}})
	key := hostKey(t)
	body := registerBody("metal-1", key)
	body["labels"] = map[string]string{"rack": "mine", "tier": "db"}
	reg := b.expect(req{method: "POST", path: "/v1/agent/register", token: tok.str("token"), body: body}, 201)

	node, _ := reg.Body["node"].(map[string]any)
	if node["name"] != "metal-1" || node["provider"] != "byo" || node["ipv4"] != "192.0.2.10" || node["organization_id"] != a.orgID {
		t.Fatalf("node %v", node)
	}
	if labels, _ := node["labels"].(map[string]any); labels["rack"] != "r1" || labels["tier"] != "db" {
		t.Errorf("labels %v: the token's win, the node's are added", labels)
	}
	agentToken := reg.str("agent_token")
	if !strings.HasPrefix(agentToken, "shardform_agent_") {
		t.Fatalf("agent token %q", agentToken)
	}
	if n := b.count(`SELECT count(*) FROM node_agents WHERE token_hash = sha256($1::bytea)`, agentToken); n != 1 {
		t.Errorf("agent token not stored hashed")
	}
	// The node is a real node of the organization, with its facts.
	if n := b.count(`SELECT count(*) FROM nodes WHERE id = $1 AND organization_id = $2 AND provider = 'byo' AND vcpu = 4 AND memory_mb = 8192 AND disk_gb = 80`,
		node["id"], a.orgID); n != 1 {
		t.Errorf("node not stored with its facts")
	}

	// Its host certificate is signed by the organization's host CA for its
	// name and address.
	certs, _ := reg.Body["host_certificates"].([]any)
	if len(certs) != 1 {
		t.Fatalf("host certificates %s", reg.Raw)
	}
	c0 := certs[0].(map[string]any)
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(c0["certificate"].(string)))
	if err != nil {
		t.Fatal(err)
	}
	cert := pub.(*ssh.Certificate)
	if cert.CertType != ssh.HostCert || strings.Join(cert.ValidPrincipals, ",") != "metal-1,192.0.2.10" ||
		string(ssh.MarshalAuthorizedKey(cert.Key)) != key+"\n" {
		t.Errorf("cert type %d principals %v", cert.CertType, cert.ValidPrincipals)
	}
	known := b.expect(req{method: "GET", path: "/v1/ssh/known-hosts?organization_id=" + a.orgID}, 200)
	caLine := strings.Fields(strings.TrimSpace(string(known.Raw)))
	if len(caLine) < 4 || caLine[2]+" "+caLine[3] != string(ssh.MarshalAuthorizedKey(cert.SignatureKey)[:len(ssh.MarshalAuthorizedKey(cert.SignatureKey))-1]) {
		t.Errorf("certificate not signed by the host CA of known-hosts %q", known.Raw)
	}
	// The trust files and the sshd settings come with it.
	caKeys := b.expect(req{method: "GET", path: "/v1/ssh/ca-public-key?organization_id=" + a.orgID}, 200)
	if reg.str("user_ca_keys") != string(caKeys.Raw) || reg.str("user_ca_keys") == "" {
		t.Errorf("user CA keys %q, want %q", reg.str("user_ca_keys"), caKeys.Raw)
	}
	krl, err := base64.StdEncoding.DecodeString(reg.str("krl"))
	if err != nil || len(krl) == 0 {
		t.Errorf("krl %q: %v", reg.str("krl"), err)
	}
	sshd, _ := reg.Body["sshd"].(map[string]any)
	if sshd["config"] != "TrustedUserCAKeys /etc/ssh/shardform_user_ca.pub\nRevokedKeys /etc/ssh/shardform_revoked.krl\n"+
		"HostCertificate /etc/ssh/ssh_host_ed25519_key-cert.pub\n" {
		t.Errorf("sshd %v", sshd)
	}
	// With the files' ETags as the file endpoints send them: a node that
	// keeps them fetches neither file until one changes.
	etags, _ := reg.Body["etags"].(map[string]any)
	for key, path := range map[string]string{"user_ca": "/v1/agent/ssh/ca-public-key", "krl": "/v1/agent/ssh/krl"} {
		if got := b.expect(req{method: "GET", path: path, header: agentHeader(agentToken)}, 200).Header.Get("ETag"); got == "" || etags[key] != got {
			t.Errorf("registration ETag of %s %v, the file's %q", key, etags[key], got)
		}
	}

	// Single use: the same token again is 401, whatever the body.
	b.expect(req{method: "POST", path: "/v1/agent/register", token: tok.str("token"), body: registerBody("metal-2", hostKey(t))}, 401)

	// The agent reads its own node.
	me := b.expect(req{method: "GET", path: "/v1/agent/node", header: agentHeader(agentToken)}, 200)
	if me.str("id") != node["id"] {
		t.Errorf("agent node %s", me.Raw)
	}

}

func TestAgentRegisterRefused(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{ssh: true})
	a := b.bootstrap("ops@example.com")
	good := registerBody("metal-1", hostKey(t))

	t.Run("expired", func(t *testing.T) {
		tok := b.regToken(a, nil)
		if _, err := b.pool.Exec(context.Background(), `UPDATE node_registration_tokens SET expires_at = now() - interval '1 second' WHERE id = $1`, tok.str("id")); err != nil {
			t.Fatal(err)
		}
		b.expect(req{method: "POST", path: "/v1/agent/register", token: tok.str("token"), body: good}, 401)
	})
	t.Run("not yet valid", func(t *testing.T) {
		tok := b.regToken(a, nil)
		if _, err := b.pool.Exec(context.Background(), `UPDATE node_registration_tokens SET not_before = now() + interval '1 hour' WHERE id = $1`, tok.str("id")); err != nil {
			t.Fatal(err)
		}
		b.expect(req{method: "POST", path: "/v1/agent/register", token: tok.str("token"), body: good}, 401)
	})
	t.Run("uses", func(t *testing.T) {
		tok := b.regToken(a, map[string]any{"uses": 2}).str("token")
		b.expect(req{method: "POST", path: "/v1/agent/register", token: tok, body: registerBody("m-1", hostKey(t))}, 201)
		b.expect(req{method: "POST", path: "/v1/agent/register", token: tok, body: registerBody("m-2", hostKey(t))}, 201)
		b.expect(req{method: "POST", path: "/v1/agent/register", token: tok, body: registerBody("m-3", hostKey(t))}, 401)
	})
	for _, tt := range []struct {
		name, token string
	}{
		{"no token", ""},
		{"garbage", "nope"},
		{"unknown", "shardform_reg_" + strings.Repeat("A", 43)},
		{"an API token", b.apiToken(a, "nodes:write")},
		{"a session", a.access},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b.expect(req{method: "POST", path: "/v1/agent/register", token: tt.token, body: good}, 401)
		})
	}
	// Bad bodies are 400 and spend no use of the token.
	tok := b.regToken(a, nil).str("token")
	for _, tt := range []struct {
		name string
		edit func(map[string]any)
	}{
		{"no host keys", func(m map[string]any) { m["host_public_keys"] = []string{} }},
		{"bad host key", func(m map[string]any) { m["host_public_keys"] = []string{"ssh-ed25519 AAAA"} }},
		{"no hostname", func(m map[string]any) { m["hostname"] = "" }},
		{"v6 as ipv4", func(m map[string]any) { m["ipv4"] = "::1" }},
		{"bad ipv6", func(m map[string]any) { m["ipv6"] = "nope" }},
		{"negative cpus", func(m map[string]any) { m["facts"] = map[string]any{"cpus": -1} }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			body := registerBody("m", hostKey(t))
			tt.edit(body)
			b.expect(req{method: "POST", path: "/v1/agent/register", token: tok, body: body}, 400)
		})
	}
	b.expect(req{method: "POST", path: "/v1/agent/register", token: tok, body: good}, 201)
}

// TestAgentTokenOpensNothingElse walks the whole route table: with an agent
// token (as X-Agent-Token, and as a bearer), every route that is not an
// agent's and not public answers 401 or 403.
func TestAgentTokenOpensNothingElse(t *testing.T) {
	t.Parallel()
	b := fullServer(t)
	a := b.bootstrap("ops@example.com")
	reg := b.joined(a, "metal-1")
	agentToken := reg.str("agent_token")
	doc := loadDocument(t, b, "/openapi.json")
	walked := 0
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			if op.Security == nil || len(*op.Security) == 0 {
				continue // public: answers anyone the same
			}
			agentOp := false
			for _, r := range *op.Security {
				if _, ok := r["agentToken"]; ok {
					agentOp = true
				}
				if _, ok := r["registrationToken"]; ok {
					agentOp = true
				}
			}
			if agentOp {
				continue
			}
			target := path
			for strings.Contains(target, "{") {
				i, j := strings.Index(target, "{"), strings.Index(target, "}")
				target = target[:i] + uuid.NewString() + target[j+1:]
			}
			for _, h := range []map[string]string{
				{"X-Agent-Token": agentToken},
				{"Authorization": "Bearer " + agentToken},
				{"X-API-Key": agentToken},
				{"X-Agent-Token": agentToken, "X-Organization-ID": a.orgID},
			} {
				r := b.do(req{method: method, path: target, header: h, body: map[string]any{}, noContract: true})
				if r.Status != 401 && r.Status != 403 {
					t.Errorf("%s %s with the agent token (%v): %d %s", method, target, keys(h), r.Status, r.Raw)
				}
				walked++
			}
		}
	}
	if walked < 4*80 {
		t.Errorf("only %d requests: is the server fully configured?", walked)
	}
	// Its own routes work.
	b.expect(req{method: "GET", path: "/v1/agent/node", header: agentHeader(agentToken)}, 200)

	// Deleting the node (DELETE /v1/nodes/{id}) revokes its agent token.
	b.expect(req{method: "DELETE", path: "/v1/nodes/" + reg.Body["node"].(map[string]any)["id"].(string), token: a.access}, 204)
	b.expect(req{method: "GET", path: "/v1/agent/node", header: agentHeader(agentToken)}, 401)
	b.expect(req{method: "POST", path: "/v1/agent/heartbeat", header: agentHeader(agentToken), body: map[string]any{}}, 401)
	if n := b.count(`SELECT count(*) FROM node_agents`); n != 0 {
		t.Errorf("%d agents left", n)
	}
}

func keys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestAgentIsolation(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{ssh: true})
	a := b.bootstrap("ops@example.com")
	other := b.register("other@example.com")
	mine := b.joined(a, "metal-1")
	theirs := b.joined(other, "metal-1")
	tok := mine.str("agent_token")
	// The agent's node is its own, whatever organization it names.
	me := b.expect(req{method: "GET", path: "/v1/agent/node", header: map[string]string{"X-Agent-Token": tok, "X-Organization-ID": other.orgID}}, 200)
	if me.str("organization_id") != a.orgID || me.str("id") != mine.Body["node"].(map[string]any)["id"] {
		t.Errorf("agent node %s", me.Raw)
	}
	// Its CA files are its organization's.
	ca := b.expect(req{method: "GET", path: "/v1/agent/ssh/ca-public-key", header: agentHeader(tok)}, 200)
	if string(ca.Raw) != mine.str("user_ca_keys") || string(ca.Raw) == theirs.str("user_ca_keys") {
		t.Errorf("CA keys %q", ca.Raw)
	}
	// The admin lists only their own agents.
	for _, tt := range []struct {
		acct account
		node any
	}{{a, mine.Body["node"].(map[string]any)["id"]}, {other, theirs.Body["node"].(map[string]any)["id"]}} {
		l := b.expect(req{method: "GET", path: "/v1/admin/agents", token: tt.acct.access}, 200).list()
		if len(l) != 1 || l[0]["node_id"] != tt.node {
			t.Errorf("%s: agents %v", tt.acct.email, l)
		}
	}
}

func TestAgentFilesETag(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{ssh: true})
	a := b.bootstrap("ops@example.com")
	tok := b.joined(a, "metal-1").str("agent_token")
	for _, path := range []string{"/v1/agent/ssh/ca-public-key", "/v1/agent/ssh/krl", "/v1/agent/ssh/known-hosts"} {
		t.Run(path, func(t *testing.T) {
			first := b.expect(req{method: "GET", path: path, header: agentHeader(tok)}, 200)
			etag := first.Header.Get("ETag")
			if etag == "" || len(first.Raw) == 0 {
				t.Fatalf("no ETag or body: %v %q", first.Header, first.Raw)
			}
			again := b.expect(req{method: "GET", path: path, header: map[string]string{"X-Agent-Token": tok, "If-None-Match": etag}}, 304)
			if len(again.Raw) != 0 || again.Header.Get("ETag") != etag {
				t.Errorf("304 with %q, etag %q", again.Raw, again.Header.Get("ETag"))
			}
			b.expect(req{method: "GET", path: path, header: map[string]string{"X-Agent-Token": tok, "If-None-Match": `"other"`}}, 200)
		})
	}
	// A heartbeat answers the files' current ETags: an unchanged refresh is one request.
	hb := b.expect(req{method: "POST", path: "/v1/agent/heartbeat", header: agentHeader(tok), body: map[string]any{}}, 200)
	etags, _ := hb.Body["etags"].(map[string]any)
	for key, path := range map[string]string{"user_ca": "/v1/agent/ssh/ca-public-key", "krl": "/v1/agent/ssh/krl"} {
		if got := b.expect(req{method: "GET", path: path, header: agentHeader(tok)}, 200).Header.Get("ETag"); got == "" || etags[key] != got {
			t.Errorf("heartbeat ETag of %s %v, the file's %q", key, etags[key], got)
		}
	}
	// A rotated user CA changes the file: the old ETag gets the new file.
	first := b.expect(req{method: "GET", path: "/v1/agent/ssh/ca-public-key", header: agentHeader(tok)}, 200)
	b.expect(req{method: "POST", path: "/v1/ssh/ca/keys/rotate", token: a.access}, 201)
	next := b.expect(req{method: "GET", path: "/v1/agent/ssh/ca-public-key", header: map[string]string{"X-Agent-Token": tok, "If-None-Match": first.Header.Get("ETag")}}, 200)
	if string(next.Raw) == string(first.Raw) || next.Header.Get("ETag") == first.Header.Get("ETag") {
		t.Error("the rotated CA did not change the file")
	}
}

func TestAgentHeartbeatRenewRotate(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{ssh: true})
	a := b.bootstrap("ops@example.com")
	key := hostKey(t)
	reg := b.expect(req{method: "POST", path: "/v1/agent/register", token: b.regToken(a, nil).str("token"), body: registerBody("metal-1", key)}, 201)
	tok := reg.str("agent_token")
	nodeID := reg.Body["node"].(map[string]any)["id"].(string)

	hb := b.expect(req{method: "POST", path: "/v1/agent/heartbeat", header: agentHeader(tok),
		body: map[string]any{"version": "1.2.3", "inventory": map[string]any{"system": map[string]any{"uptime_seconds": 10}}}}, 200)
	if hb.str("node_id") != nodeID || hb.Body["heartbeat_interval_seconds"] != float64(60) || hb.str("last_seen_at") == "" {
		t.Errorf("heartbeat %s", hb.Raw)
	}
	// The heartbeat names the principals a host certificate signed now
	// carries (those of the registration's): a node whose address changed
	// (a power cycle) sees the new one and renews its certificate.
	principals := func(r response) []string {
		t.Helper()
		var out []string
		list, _ := r.Body["host_principals"].([]any)
		if list == nil {
			list, _ = r.Body["principals"].([]any)
		}
		for _, p := range list {
			out = append(out, p.(string))
		}
		return out
	}
	regCert := response{Body: reg.Body["host_certificates"].([]any)[0].(map[string]any)}
	if got, want := principals(hb), principals(regCert); len(want) == 0 || !slices.Equal(got, want) {
		t.Errorf("heartbeat principals %v, the registration's certificate %v", got, want)
	}
	if _, err := b.pool.Exec(context.Background(), "UPDATE nodes SET ipv4 = '203.0.113.77' WHERE id = $1", nodeID); err != nil {
		t.Fatal(err)
	}
	moved := b.expect(req{method: "POST", path: "/v1/agent/heartbeat", header: agentHeader(tok),
		body: map[string]any{"version": "1.2.3", "inventory": map[string]any{"system": map[string]any{"uptime_seconds": 10}}}}, 200)
	if got := principals(moved); !slices.Contains(got, "203.0.113.77") || !slices.Contains(got, "metal-1") {
		t.Errorf("heartbeat principals after the address changed %v", got)
	}
	b.expect(req{method: "POST", path: "/v1/agent/heartbeat", header: agentHeader(tok), body: map[string]any{"inventory": []int{1}}}, 400)

	// The inventory of the latest heartbeat, whole and by part.
	inv := b.expect(req{method: "GET", path: "/v1/nodes/" + nodeID + "/inventory", token: a.access}, 200)
	if sys, _ := inv.Body["inventory"].(map[string]any)["system"].(map[string]any); sys["uptime_seconds"] != float64(10) || inv.str("version") != "1.2.3" {
		t.Errorf("inventory %s", inv.Raw)
	}
	part := b.expect(req{method: "GET", path: "/v1/nodes/" + nodeID + "/inventory/system", token: a.access}, 200)
	if got := part.Body["inventory"].(map[string]any); len(got) != 1 || got["system"] == nil {
		t.Errorf("system part %s", part.Raw)
	}
	if got := b.expect(req{method: "GET", path: "/v1/nodes/" + nodeID + "/inventory/disks", token: a.access}, 200).Body["inventory"].(map[string]any); len(got) != 1 || got["disks"] != nil {
		t.Errorf("disks part (not reported) %v", got)
	}
	other := b.register("other@example.com")
	b.expect(req{method: "GET", path: "/v1/nodes/" + nodeID + "/inventory", token: other.access}, 404)
	bare := b.addNode(a.orgID, "no-agent", "", "")
	if r := b.expect(req{method: "GET", path: "/v1/nodes/" + bare + "/inventory/network", token: a.access}, 404); !strings.Contains(r.errMsg(), "no agent") {
		t.Errorf("node without agent: %s", r.Raw)
	}
	if n := b.count(`SELECT count(*) FROM audit_logs WHERE action LIKE '%heartbeat%'`); n != 0 {
		t.Errorf("%d heartbeats in the audit log", n)
	}
	agents := b.expect(req{method: "GET", path: "/v1/admin/agents", token: a.access}, 200).list()
	if len(agents) != 1 || agents[0]["version"] != "1.2.3" || agents[0]["last_seen_at"] == nil || agents[0]["hostname"] != "metal-1" {
		t.Errorf("agents %v", agents)
	}

	renewed := b.expect(req{method: "POST", path: "/v1/agent/host-certificates", header: agentHeader(tok), body: map[string]any{"host_public_keys": []string{key + " root@metal-1"}}}, 200)
	if certs, _ := renewed.Body["host_certificates"].([]any); len(certs) != 1 || certs[0].(map[string]any)["public_key"] != key {
		t.Errorf("renewed %s", renewed.Raw)
	}
	hostCerts := b.expect(req{method: "GET", path: "/v1/ssh/host-certificates?node=" + nodeID, token: a.access}, 200).list()
	if len(hostCerts) != 2 || hostCerts[0]["user_id"] != nil {
		t.Errorf("host certificates of the node %v", hostCerts)
	}
	// Host keys are pinned at registration: the agent token gets no
	// certificate for another key (a stolen token signs nothing new).
	before := b.snapshot()
	stranger := b.expect(req{method: "POST", path: "/v1/agent/host-certificates", header: agentHeader(tok), body: map[string]any{"host_public_keys": []string{key, hostKey(t)}}}, 403)
	if !strings.Contains(stranger.errMsg(), "host_public_keys[1]: not a host key this node registered with") {
		t.Errorf("renewal for an unregistered key: %s", stranger.Raw)
	}
	b.unchanged(before)
	b.expect(req{method: "POST", path: "/v1/agent/host-certificates", header: agentHeader(tok), body: map[string]any{"host_public_keys": []string{}}}, 400)

	rot := b.expect(req{method: "POST", path: "/v1/agent/token/rotate", header: agentHeader(tok)}, 200)
	b.expect(req{method: "GET", path: "/v1/agent/node", header: agentHeader(tok)}, 401)
	b.expect(req{method: "GET", path: "/v1/agent/node", header: agentHeader(rot.str("agent_token"))}, 200)
}

// TestAgentUnreachable: a node not heard from for three heartbeat
// intervals becomes unreachable (the periodic sweep); suggest-fit and
// placement skip it; its next heartbeat makes it ready again. A cordoned
// node stays cordoned.
func TestAgentUnreachable(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{ssh: true})
	a := b.bootstrap("ops@example.com")
	reg := b.joined(a, "metal-1")
	tok := reg.str("agent_token")
	nodeID := reg.Body["node"].(map[string]any)["id"].(string)
	cordoned := b.joined(a, "metal-2").Body["node"].(map[string]any)["id"].(string)
	// The sweep as a worker process runs it: a service of its own on the database.
	sweeper := agent.New(store.NewStore(b.pool), nil, agent.Options{})
	sweep := func() int64 {
		t.Helper()
		n, err := sweeper.SweepUnreachable(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	need := map[string]any{"cpu": 1, "memory_gb": 2, "disk_gb": 10}
	if n := sweep(); n != 0 {
		t.Fatalf("fresh nodes swept: %d", n)
	}
	if free, why := b.freeOn(a.access, "metal-1", need); free == nil {
		t.Fatalf("a ready node is rejected: %v", why)
	}
	for _, q := range []string{
		`UPDATE node_agents SET last_seen_at = now() - interval '181 seconds'`,
		`UPDATE nodes SET status = 'cordoned' WHERE id = '` + cordoned + `'`,
	} {
		if _, err := b.pool.Exec(context.Background(), q); err != nil {
			t.Fatal(err)
		}
	}
	if n := sweep(); n != 1 {
		t.Fatalf("swept %d nodes, want 1 (metal-1; metal-2 is cordoned)", n)
	}
	if st := b.expect(req{method: "GET", path: "/v1/agent/node", header: agentHeader(tok)}, 200).str("status"); st != "unreachable" {
		t.Errorf("status %q", st)
	}
	if free, why := b.freeOn(a.access, "metal-1", need); free != nil || len(why) == 0 {
		t.Errorf("suggest-fit offers an unreachable node: %v %v", free, why)
	}
	r := b.expect(req{method: "POST", path: "/v1/instances", token: a.access, body: map[string]any{"node_id": nodeID, "name": "gs-1", "cpu": 1, "memory_gb": 1, "disk_gb": 1}}, 409)
	if !strings.Contains(r.errMsg(), "unreachable") {
		t.Errorf("placement: %s", r.Raw)
	}
	b.expect(req{method: "POST", path: "/v1/agent/heartbeat", header: agentHeader(tok), body: map[string]any{}}, 200)
	if st := b.expect(req{method: "GET", path: "/v1/agent/node", header: agentHeader(tok)}, 200).str("status"); st != "ready" {
		t.Errorf("after a heartbeat: status %q", st)
	}
	if free, why := b.freeOn(a.access, "metal-1", need); free == nil {
		t.Errorf("after a heartbeat, rejected: %v", why)
	}
	if n := b.count(`SELECT count(*) FROM nodes WHERE id = $1 AND status = 'cordoned'`, cordoned); n != 1 {
		t.Error("the cordoned node changed status")
	}
}

// TestAgentRegisterAutoDNS: with auto-DNS on, a machine brought with node
// join gets its A and AAAA records in the registration (synced to
// Cloudflare by the dns queue), its host certificate names the fqdn, and
// deleting the node deletes the records.
func TestAgentRegisterAutoDNS(t *testing.T) {
	t.Parallel()
	d := dnsSetup(t, setupOpts{ssh: true, provisioning: true})
	d.expect(req{method: "PUT", path: "/v1/dns/auto-config", token: d.a.access,
		body: map[string]any{"enabled": true, "zone_id": zoneCom, "name_template": "{name}"}}, 200)
	tok := d.regToken(d.a, nil).str("token")
	body := registerBody("metal-1", hostKey(t), hostKey(t))
	body["ipv6"] = "2001:db8::10"
	reg := d.expect(req{method: "POST", path: "/v1/agent/register", token: tok, body: body}, 201)
	nodeID := reg.Body["node"].(map[string]any)["id"].(string)

	certs, _ := reg.Body["host_certificates"].([]any)
	if len(certs) != 2 {
		t.Fatalf("host certificates %s", reg.Raw)
	}
	for _, c := range certs {
		pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(c.(map[string]any)["certificate"].(string)))
		if err != nil {
			t.Fatal(err)
		}
		if got := pub.(*ssh.Certificate).ValidPrincipals; !slices.Equal(got, []string{"metal-1", "metal-1.example.com", "192.0.2.10", "2001:db8::10"}) {
			t.Errorf("host certificate principals %v, want the fqdn among them", got)
		}
	}
	// One HostCertificate line per path, though two keys of a type.
	if cfg := reg.Body["sshd"].(map[string]any)["config"].(string); strings.Count(cfg, "HostCertificate /etc/ssh/ssh_host_ed25519_key-cert.pub\n") != 1 {
		t.Errorf("sshd config %q", cfg)
	}

	node := d.expect(req{method: "GET", path: "/v1/nodes/" + nodeID, token: d.a.access}, 200)
	ids, _ := node.Body["dns_record_ids"].([]any)
	if node.str("fqdn") != "metal-1.example.com" || len(ids) != 2 {
		t.Fatalf("node %s", node.Raw)
	}
	for _, id := range ids {
		rec := d.waitSynced(d.a.access, id.(string))
		want := map[string]string{"A": "192.0.2.10", "AAAA": "2001:db8::10"}[rec.str("type")]
		cf := d.cf.Find(zoneCom, "metal-1.example.com", rec.str("type"))
		if rec.Body["auto"] != true || rec.str("content") != want || len(cf) != 1 || cf[0].Content != want || cf[0].Comment != marker(d.a.orgID, rec.str("id")) {
			t.Errorf("record %s; Cloudflare has %+v", rec.Raw, cf)
		}
	}
	// The heartbeat names the same principals: no renewal loop.
	hb := d.expect(req{method: "POST", path: "/v1/agent/heartbeat", header: agentHeader(reg.str("agent_token")), body: map[string]any{"version": "test"}}, 200)
	if got := hb.Body["host_principals"].([]any); len(got) != 4 || got[1] != "metal-1.example.com" {
		t.Errorf("heartbeat principals %v", got)
	}

	// Deleting the node deletes its records, in Cloudflare too.
	d.expect(req{method: "DELETE", path: "/v1/nodes/" + nodeID, token: d.a.access}, 204)
	for _, id := range ids {
		if r := d.wait(d.a.access, id.(string)); r.str("status") != "deleted" {
			t.Errorf("after the node's deletion the record is %s", r.Raw)
		}
	}
	if cf := append(d.cf.Find(zoneCom, "metal-1.example.com", "A"), d.cf.Find(zoneCom, "metal-1.example.com", "AAAA")...); len(cf) != 0 {
		t.Errorf("Cloudflare still has %+v", cf)
	}

	// Auto-DNS off: a node that registers gets no record and no fqdn.
	d.expect(req{method: "PUT", path: "/v1/dns/auto-config", token: d.a.access, body: map[string]any{"enabled": false}}, 200)
	off := d.expect(req{method: "POST", path: "/v1/agent/register", token: d.regToken(d.a, nil).str("token"), body: registerBody("metal-2", hostKey(t))}, 201)
	if got := off.Body["host_certificates"].([]any)[0].(map[string]any)["principals"].([]any); len(got) != 2 || got[0] != "metal-2" || got[1] != "192.0.2.10" {
		t.Errorf("principals without auto-DNS %v", got)
	}
	if n := d.count(`SELECT count(*) FROM dns_records WHERE node_id = $1`, off.Body["node"].(map[string]any)["id"]); n != 0 {
		t.Errorf("%d records of a node registered with auto-DNS off", n)
	}
}
