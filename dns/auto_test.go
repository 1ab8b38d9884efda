package dns_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/shardform/shardform/credentials"
	"github.com/shardform/shardform/dns"
	"github.com/shardform/shardform/domain"
	"github.com/shardform/shardform/seal"
	"github.com/shardform/shardform/store"
	"github.com/shardform/shardform/store/storetest"
	"github.com/shardform/shardform/worker"
)

// TestAutoDNSFollowsTheNode drives the hooks provisioning calls inside its
// transactions: a registered node gets its A and AAAA records, a changed
// address updates them, a lost IPv6 deletes the AAAA, a destroy deletes
// them all, and a template giving no valid name fails the record, not the
// transaction. Each change queues one dns_sync job in the same transaction.
func TestAutoDNSFollowsTheNode(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := storetest.NewPool(t)
	st := store.NewStore(pool)
	sealer, err := seal.New(bytes.Repeat([]byte{7}, seal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	creds := credentials.New(st, sealer, nil)
	svc := dns.New(st, creds, dns.Options{})
	client, err := worker.NewClient(pool, st, worker.Options{DNS: svc, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	svc.UseQueue(client) // insert only: the jobs stay queued for the test to count

	var org uuid.UUID
	if err := pool.QueryRow(ctx, "INSERT INTO organizations (name) VALUES ('Acme Games') RETURNING id").Scan(&org); err != nil {
		t.Fatal(err)
	}
	var user uuid.UUID
	if err := pool.QueryRow(ctx, "INSERT INTO users (email, password_hash) VALUES ('ops@example.com', 'x') RETURNING id").Scan(&user); err != nil {
		t.Fatal(err)
	}
	p := &domain.Principal{UserID: user, OrgID: org, HasOrg: true, Perms: domain.NewPermissionSet([]domain.Permission{domain.PermCredentialsWrite})}
	cred, err := creds.Create(ctx, p, credentials.Input{Name: "cf", Provider: "cloudflare", Secret: credentials.Secret{"api_token": "token-0123456789"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Q.UpsertDNSAutoConfig(ctx, pool, store.UpsertDNSAutoConfigParams{OrganizationID: org, Enabled: true,
		CredentialID: uuid.NullUUID{UUID: cred.ID, Valid: true}, ZoneID: "023e105f4ecef8ad9ca31a8372d0c353", ZoneName: "example.com",
		NameTemplate: "{name}.{org}", Ttl: 1, Ipv6: true}); err != nil {
		t.Fatal(err)
	}
	provisionID := uuid.New()
	if _, err := pool.Exec(ctx, `INSERT INTO provision_requests (id, organization_id, provider, region, instance_type, name, status) VALUES ($1, $2, 'local', 'local', 'local-small', 'mc-1', 'applying')`, provisionID, org); err != nil {
		t.Fatal(err)
	}
	register := func(name, v4, v6 string) store.Node {
		t.Helper()
		var n store.Node
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			var err error
			n, err = st.Q.InsertNodeOnce(ctx, tx, store.InsertNodeOnceParams{OrganizationID: org, ProvisionID: uuid.NullUUID{UUID: provisionID, Valid: true},
				Name: name, Provider: "local", Region: "local", InstanceType: "local-small", Vcpu: 1, MemoryMb: 1024, DiskGb: 10, Ipv4: v4, Ipv6: v6, Labels: []byte("{}")})
			if err != nil {
				return err
			}
			return svc.NodeRegistered(ctx, tx, n)
		})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	type row struct {
		typ, name, content, status string
		gen                        int64
	}
	records := func() map[string]row {
		t.Helper()
		rows, err := pool.Query(ctx, "SELECT type, name, content, status, generation FROM dns_records WHERE organization_id = $1 AND auto", org)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		out := map[string]row{}
		for rows.Next() {
			var r row
			if err := rows.Scan(&r.typ, &r.name, &r.content, &r.status, &r.gen); err != nil {
				t.Fatal(err)
			}
			out[r.typ] = r
		}
		return out
	}
	jobs := func() int {
		t.Helper()
		var n int
		if err := pool.QueryRow(ctx, "SELECT count(*) FROM river_job WHERE kind = 'dns_sync'").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	register("mc-1", "192.0.2.1", "2001:db8::1")
	got := records()
	if got["A"] != (row{"A", "mc-1.acme-games.example.com", "192.0.2.1", "pending", 1}) ||
		got["AAAA"] != (row{"AAAA", "mc-1.acme-games.example.com", "2001:db8::1", "pending", 1}) || jobs() != 2 {
		t.Fatalf("after registration: %+v, %d jobs", got, jobs())
	}
	register("mc-1", "192.0.2.1", "2001:db8::1") // a retried apply: nothing changes
	if r := records(); r["A"].gen != 1 || jobs() != 2 {
		t.Errorf("a second registration changed %+v (%d jobs)", r, jobs())
	}
	// The queued jobs are unique per record while waiting: the change
	// below is picked up by the job already queued.
	register("mc-1", "192.0.2.7", "")
	got = records()
	if got["A"].content != "192.0.2.7" || got["A"].gen != 2 || got["A"].status != "pending" || got["AAAA"].status != "deleting" || jobs() != 2 {
		t.Errorf("after the address changed: %+v, %d jobs", got, jobs())
	}
	var audits int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM audit_logs WHERE organization_id = $1 AND action LIKE 'dns.auto.%'", org).Scan(&audits); err != nil || audits != 4 {
		t.Errorf("%d auto-DNS audit entries (%v), want 4 (2 creates, an update, a delete)", audits, err)
	}
	if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return svc.NodeRemoved(ctx, tx, org, provisionID) }); err != nil {
		t.Fatal(err)
	}
	if got := records(); got["A"].status != "deleting" || got["AAAA"].status != "deleting" {
		t.Errorf("after the destroy: %+v", got)
	}

	// A name the template cannot make: the record fails, the transaction does not.
	if _, err := pool.Exec(ctx, "UPDATE dns_records SET status = 'deleted' WHERE organization_id = $1", org); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("x", 60)
	if _, err := st.Q.UpsertDNSAutoConfig(ctx, pool, store.UpsertDNSAutoConfigParams{OrganizationID: org, Enabled: true,
		CredentialID: uuid.NullUUID{UUID: cred.ID, Valid: true}, ZoneID: "023e105f4ecef8ad9ca31a8372d0c353", ZoneName: "example.com",
		NameTemplate: "{name}-{region}", Ttl: 1}); err != nil {
		t.Fatal(err)
	}
	provisionID = uuid.New()
	if _, err := pool.Exec(ctx, `INSERT INTO provision_requests (id, organization_id, provider, region, instance_type, name, status) VALUES ($1, $2, 'local', 'local', 'local-small', 'x', 'applying')`, provisionID, org); err != nil {
		t.Fatal(err)
	}
	register(long, "192.0.2.8", "")
	var status, msg string
	if err := pool.QueryRow(ctx, "SELECT status, error FROM dns_records WHERE organization_id = $1 AND auto AND status <> 'deleted'", org).Scan(&status, &msg); err != nil ||
		status != "failed" || !strings.Contains(msg, "name") {
		t.Errorf("record of an unnameable node: %s %q (%v)", status, msg, err)
	}
}

// TestAutoDNSNodeAddressChanged drives the hook power actions call when a
// node's addresses changed: a node auto-DNS gave no records is left
// alone; one it did has its A record's content updated with one dns_sync
// job, in the caller's transaction.
func TestAutoDNSNodeAddressChanged(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := storetest.NewPool(t)
	st := store.NewStore(pool)
	sealer, err := seal.New(bytes.Repeat([]byte{7}, seal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	creds := credentials.New(st, sealer, nil)
	svc := dns.New(st, creds, dns.Options{})
	client, err := worker.NewClient(pool, st, worker.Options{DNS: svc, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	svc.UseQueue(client) // insert only: the jobs stay queued for the test to count
	var org uuid.UUID
	if err := pool.QueryRow(ctx, "INSERT INTO organizations (name) VALUES ('acme') RETURNING id").Scan(&org); err != nil {
		t.Fatal(err)
	}
	var user uuid.UUID
	if err := pool.QueryRow(ctx, "INSERT INTO users (email, password_hash) VALUES ('ops@example.com', 'x') RETURNING id").Scan(&user); err != nil {
		t.Fatal(err)
	}
	p := &domain.Principal{UserID: user, OrgID: org, HasOrg: true, Perms: domain.NewPermissionSet([]domain.Permission{domain.PermCredentialsWrite})}
	cred, err := creds.Create(ctx, p, credentials.Input{Name: "cf", Provider: "cloudflare", Secret: credentials.Secret{"api_token": "token-0123456789"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Q.UpsertDNSAutoConfig(ctx, pool, store.UpsertDNSAutoConfigParams{OrganizationID: org, Enabled: true,
		CredentialID: uuid.NullUUID{UUID: cred.ID, Valid: true}, ZoneID: "023e105f4ecef8ad9ca31a8372d0c353", ZoneName: "example.com",
		NameTemplate: "{name}", Ttl: 1, Ipv6: true}); err != nil {
		t.Fatal(err)
	}
	node := func(name, v4 string) store.Node {
		t.Helper()
		var n store.Node
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			var err error
			n, err = st.Q.InsertNodeOnce(ctx, tx, store.InsertNodeOnceParams{OrganizationID: org, Name: name, Provider: "aws", Region: "eu-central-1",
				InstanceType: "t3.small", Vcpu: 2, MemoryMb: 2048, DiskGb: 8, Ipv4: v4, Labels: []byte("{}")})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	inTx := func(fn func(tx pgx.Tx) error) {
		t.Helper()
		if err := pgx.BeginFunc(ctx, pool, fn); err != nil {
			t.Fatal(err)
		}
	}
	count := func(q string) int {
		t.Helper()
		var n int
		if err := pool.QueryRow(ctx, q, org).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	jobs := func() int {
		t.Helper()
		return count("SELECT count(*) FROM river_job WHERE kind = 'dns_sync' AND args->>'organization_id' = $1::text")
	}

	t.Run("a node without auto-DNS records is left alone", func(t *testing.T) {
		n := node("bare", "198.51.100.1")
		n.Ipv4 = "203.0.113.1"
		inTx(func(tx pgx.Tx) error { return svc.NodeAddressChanged(ctx, tx, n) })
		if c := count("SELECT count(*) FROM dns_records WHERE organization_id = $1"); c != 0 || jobs() != 0 {
			t.Errorf("%d records, %d jobs", c, jobs())
		}
	})
	t.Run("a managed node's A record follows its address", func(t *testing.T) {
		n := node("game-1", "198.51.100.2")
		inTx(func(tx pgx.Tx) error { return svc.NodeRegistered(ctx, tx, n) })
		before := jobs()
		n.Ipv4 = "203.0.113.2"
		inTx(func(tx pgx.Tx) error { return svc.NodeAddressChanged(ctx, tx, n) })
		var content string
		var gen int64
		if err := pool.QueryRow(ctx, "SELECT content, generation FROM dns_records WHERE organization_id = $1 AND auto AND type = 'A' AND name = 'game-1.example.com'", org).
			Scan(&content, &gen); err != nil || content != "203.0.113.2" || gen != 2 {
			t.Errorf("A record %q generation %d (%v)", content, gen, err)
		}
		// The record's job was still queued (unique per record): it carries the change.
		if jobs() != before {
			t.Errorf("%d dns_sync jobs after the change, %d before", jobs(), before)
		}
		if c := count("SELECT count(*) FROM audit_logs WHERE organization_id = $1 AND action = 'dns.auto.update'"); c != 1 {
			t.Errorf("%d dns.auto.update audit entries", c)
		}
	})
}
