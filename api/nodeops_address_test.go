package api_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/shardform/shardform/credentials"
	"github.com/shardform/shardform/dns"
	"github.com/shardform/shardform/internal/fake/awsfake"
	"github.com/shardform/shardform/nodeops"
	"github.com/shardform/shardform/providers"
	"github.com/shardform/shardform/seal"
	"github.com/shardform/shardform/store"
	"github.com/shardform/shardform/worker"
)

// flakyDescribe is the AWS power client whose PowerStatus (the address
// read after a start, and the status endpoint) fails while fail > 0; its
// Start, Stop and Reboot, and their own polling, are the SDK's against the
// EC2 fake.
type flakyDescribe struct {
	providers.AWSPower
	fail *atomic.Int32
}

func (f flakyDescribe) PowerStatus(ctx context.Context, m providers.Machine) (providers.PowerStatus, error) {
	if f.fail.Load() > 0 {
		f.fail.Add(-1)
		return providers.PowerStatus{}, errors.New("aws: DescribeInstances: RequestLimitExceeded: Request limit exceeded.")
	}
	return f.AWSPower.PowerStatus(ctx, m)
}

// TestPowerAWSNewAddressUpdatesDNS: an aws node without an Elastic IP
// (the EC2 fake gives a started instance a new public IPv4) with auto-DNS
// records at Cloudflare (the local fake). A stop and a start record the
// new IPv4 on the node and move its A record at Cloudflare, its AAAA (the
// IPv6, kept by EC2) untouched; a reboot that keeps the address queues no
// DNS job; a start whose address read fails still succeeds: the read is
// retried inside the job, and when it keeps failing a node_addresses job
// records the address and moves the record, without any status read.
func TestPowerAWSNewAddressUpdatesDNS(t *testing.T) {
	t.Parallel()
	fake := awsfake.New(t)
	fake.Allow(awsKeyID, awsSecret)
	fail := &atomic.Int32{}
	d := dnsSetup(t, setupOpts{provisioning: true, nodeOps: true, stopTimeout: 200 * time.Millisecond, addressRetry: 5 * time.Millisecond,
		clouds: map[string]nodeops.Power{"aws": flakyDescribe{providers.AWSPower{Endpoint: fake.URL, PollInterval: 5 * time.Millisecond}, fail}}})
	tok := d.a.access
	ctx := context.Background()
	d.createCredential(tok, "aws main", "aws", map[string]string{"access_key_id": awsKeyID, "secret_access_key": awsSecret})
	d.expect(req{method: "PUT", path: "/v1/dns/auto-config", token: tok,
		body: map[string]any{"enabled": true, "zone_id": zoneCom, "name_template": "{name}.nodes"}}, 200)

	// A node as an apply registers it: the instance's addresses, and its
	// auto-DNS records made by the apply's path (dns.Service.NodeRegistered
	// in a transaction; the server's dns worker syncs them).
	inst := fake.AddInstance("eu-central-1", "t3.small")
	fake.SetIPv6(inst, "2001:db8:10::1")
	instance := func(t *testing.T) awsfake.Instance {
		t.Helper()
		for _, in := range fake.Instances() {
			if in.ID == inst {
				return in
			}
		}
		t.Fatalf("instance %s is gone", inst)
		return awsfake.Instance{}
	}
	first := instance(t).PublicIP
	node := d.insertNode(d.a.orgID, "game-1", "aws", "eu-central-1", inst, "")
	if _, err := d.pool.Exec(ctx, "UPDATE nodes SET ipv4 = $1, ipv6 = $2 WHERE id = $3", first, "2001:db8:10::1", node); err != nil {
		t.Fatal(err)
	}
	registerDNS(t, d.bundle, d.a.orgID, node)
	const fqdn = "game-1.nodes.example.com"
	cfContent := func(t *testing.T, typ string) string {
		t.Helper()
		recs := d.cf.Find(zoneCom, fqdn, typ)
		if len(recs) != 1 {
			t.Fatalf("Cloudflare has %d %s records for %s: %+v", len(recs), typ, fqdn, recs)
		}
		return recs[0].Content
	}
	// waitA polls Cloudflare until the node's A record holds ip.
	waitA := func(t *testing.T, ip string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			if recs := d.cf.Find(zoneCom, fqdn, "A"); len(recs) == 1 && recs[0].Content == ip {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("Cloudflare's A record of %s is %+v after 30s, want %s", fqdn, d.cf.Find(zoneCom, fqdn, "A"), ip)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitA(t, first)
	recordsOfNode := d.expect(req{method: "GET", path: "/v1/dns/records?node=" + node, token: tok}, 200).list()
	if len(recordsOfNode) != 2 {
		t.Fatalf("records of the node %v", recordsOfNode)
	}
	for _, r := range recordsOfNode {
		d.waitSynced(tok, r["id"].(string))
	}
	count := func(t *testing.T, q string) int {
		t.Helper()
		var n int
		if err := d.pool.QueryRow(ctx, q).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	dnsJobs := func(t *testing.T) int { return count(t, "SELECT count(*) FROM river_job WHERE kind = 'dns_sync'") }
	addressAudits := func(t *testing.T) int {
		return count(t, "SELECT count(*) FROM audit_logs WHERE action = 'node.address'")
	}
	ipv4 := func(t *testing.T) string {
		t.Helper()
		return d.on(t).expect(req{method: "GET", path: "/v1/nodes/" + node, token: tok}, 200).str("ipv4")
	}

	t.Run("stop and start: the node and its A record get the new address", func(t *testing.T) {
		d := d.on(t)
		d.powerOK(tok, node, "stop")
		if got := ipv4(t); got != first {
			t.Errorf("node address after the stop %q, want %q (a stopped instance reports none: kept)", got, first)
		}
		d.powerOK(tok, node, "start")
		now := instance(t).PublicIP
		if now == first || !strings.HasPrefix(now, "203.0.113.") {
			t.Fatalf("EC2 fake gave the started instance %q (was %q)", now, first)
		}
		n := d.expect(req{method: "GET", path: "/v1/nodes/" + node, token: tok}, 200)
		if n.str("ipv4") != now || n.str("ipv6") != "2001:db8:10::1" || n.str("fqdn") != fqdn {
			t.Errorf("node after the start %s; EC2 says %s", n.Raw, now)
		}
		waitA(t, now)
		if got := cfContent(t, "AAAA"); got != "2001:db8:10::1" {
			t.Errorf("AAAA at Cloudflare %q", got)
		}
		for _, r := range d.expect(req{method: "GET", path: "/v1/dns/records?node=" + node, token: tok}, 200).list() {
			rec := d.waitSynced(tok, r["id"].(string))
			if rec.str("type") == "A" && rec.str("content") != now {
				t.Errorf("A record %s", rec.Raw)
			}
		}
		if addressAudits(t) != 1 {
			t.Errorf("%d node.address audit entries, want 1", addressAudits(t))
		}
	})

	t.Run("a reboot keeping the address changes nothing", func(t *testing.T) {
		d := d.on(t)
		jobs, audits, before := dnsJobs(t), addressAudits(t), ipv4(t)
		d.powerOK(tok, node, "reboot")
		if instance(t).Reboots != 1 {
			t.Fatalf("EC2 counted %d reboots", instance(t).Reboots)
		}
		// So is a start of a running node (no StartInstances: same address).
		d.powerOK(tok, node, "start")
		if got := ipv4(t); got != before || dnsJobs(t) != jobs || addressAudits(t) != audits {
			t.Errorf("address %q (was %q), %d dns_sync jobs (were %d), %d node.address audits (were %d)",
				got, before, dnsJobs(t), jobs, addressAudits(t), audits)
		}
	})

	t.Run("an address read that fails twice is retried inside the job", func(t *testing.T) {
		d := d.on(t)
		before, audits := ipv4(t), addressAudits(t)
		d.powerOK(tok, node, "stop")
		fail.Store(2)
		d.powerOK(tok, node, "start")
		now := instance(t).PublicIP
		if now == before || fail.Load() != 0 {
			t.Fatalf("EC2 fake gave %q (was %q); failures left %d", now, before, fail.Load())
		}
		// Recorded with the action's outcome: no follow-up job, no status read.
		if got := ipv4(t); got != now || addressAudits(t) != audits+1 {
			t.Errorf("node address %q after the start, EC2 says %q; %d node.address audits (were %d)", got, now, addressAudits(t), audits)
		}
		if n := count(t, "SELECT count(*) FROM river_job WHERE kind = 'node_addresses'"); n != 0 {
			t.Errorf("%d node_addresses jobs after a read that succeeded on its third try", n)
		}
		waitA(t, now)
	})

	t.Run("an address read that keeps failing: a follow-up job catches up without a status read", func(t *testing.T) {
		d := d.on(t)
		before, audits := ipv4(t), addressAudits(t)
		d.powerOK(tok, node, "stop")
		fail.Store(4)                 // the job's 3 tries, and the follow-up job's first attempt
		d.powerOK(tok, node, "start") // succeeded, although the address read failed
		now := instance(t).PublicIP
		if now == before {
			t.Fatalf("EC2 fake gave %q (was %q)", now, before)
		}
		// Nobody reads the power status: the node_addresses job (its
		// second attempt, after River's backoff) records the address and
		// moves the A record.
		deadline := time.Now().Add(time.Minute)
		for ipv4(t) != now {
			if time.Now().After(deadline) {
				t.Fatalf("node address %q a minute after the start, EC2 says %q", ipv4(t), now)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if fail.Load() != 0 {
			t.Errorf("failures left %d: the follow-up job's failed attempt was not retried", fail.Load())
		}
		if n := count(t, "SELECT count(*) FROM river_job WHERE kind = 'node_action' AND attempt > 1"); n != 0 {
			t.Errorf("%d power action jobs needed a second attempt", n)
		}
		// River records the job's completion after its work returned.
		for count(t, "SELECT count(*) FROM river_job WHERE kind = 'node_addresses' AND state = 'completed'") != 1 {
			if time.Now().After(deadline) {
				var state string
				var attempt int
				var errs []string
				_ = d.pool.QueryRow(ctx, "SELECT state::text, attempt, coalesce(errors::text[], '{}') FROM river_job WHERE kind = 'node_addresses'").Scan(&state, &attempt, &errs)
				t.Fatalf("the node_addresses job never completed: %s, attempt %d, errors %v", state, attempt, errs)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if n := count(t, "SELECT count(*) FROM river_job WHERE kind = 'node_addresses' AND attempt = 2"); n != 1 {
			t.Errorf("%d node_addresses jobs completed on their second attempt, want 1", n)
		}
		waitA(t, now)
		if addressAudits(t) != audits+1 {
			t.Errorf("%d node.address audit entries, want %d", addressAudits(t), audits+1)
		}
	})
}

// registerDNS gives a node its auto-DNS records as an apply does
// (dns.Service.NodeRegistered inside a transaction, inserting the records'
// dns_sync jobs, which the test server's dns worker runs).
func registerDNS(t *testing.T, b *bundle, org, nodeID string) {
	t.Helper()
	ctx := context.Background()
	st := store.NewStore(b.pool)
	sealer, err := seal.New(bytes.Repeat([]byte{42}, seal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	svc := dns.New(st, credentials.New(st, sealer, nil), dns.Options{})
	client, err := worker.NewClient(b.pool, st, worker.Options{DNS: svc, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	svc.UseQueue(client) // insert only
	n, err := st.Q.GetNode(ctx, b.pool, store.GetNodeParams{OrganizationID: uuid.MustParse(org), ID: uuid.MustParse(nodeID)})
	if err != nil {
		t.Fatal(err)
	}
	if err := pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error { return svc.NodeRegistered(ctx, tx, n) }); err != nil {
		t.Fatal(err)
	}
}
