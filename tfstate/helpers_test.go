package tfstate_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shardform/shardform/seal"
	"github.com/shardform/shardform/store"
	"github.com/shardform/shardform/store/storetest"
	"github.com/shardform/shardform/tfstate"
)

// clock is the service's injected clock; tests move it.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type bundle struct {
	svc   *tfstate.Service
	pool  *pgxpool.Pool
	clock *clock
	dbURL string
}

func setup(t *testing.T, opts tfstate.Options) *bundle {
	t.Helper()
	url := storetest.NewDB(t)
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	sealer, err := seal.New(bytes.Repeat([]byte{7}, seal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	c := &clock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	return &bundle{svc: tfstate.New(store.NewStore(pool), sealer, c.Now, opts), pool: pool, clock: c, dbURL: url}
}

func (b *bundle) org(t *testing.T) uuid.UUID {
	t.Helper()
	var id uuid.UUID
	if err := b.pool.QueryRow(context.Background(), "INSERT INTO organizations (name) VALUES ('o') RETURNING id").Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id
}

func (b *bundle) provision(t *testing.T, org uuid.UUID) uuid.UUID {
	t.Helper()
	var id uuid.UUID
	err := b.pool.QueryRow(context.Background(),
		`INSERT INTO provision_requests (organization_id, provider, region, instance_type, name, status)
		 VALUES ($1, 'local', 'local', 'small', $2, 'pending') RETURNING id`, org, "n-"+uuid.NewString()[:8]).Scan(&id)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// runGrant makes a provision request's state and a run credential on it,
// and returns the grant AuthenticateRun gives for it.
func (b *bundle) runGrant(t *testing.T, org, provision uuid.UUID) (tfstate.Grant, string, string) {
	t.Helper()
	ctx := context.Background()
	state, err := b.svc.ProvisionState(ctx, org, provision)
	if err != nil {
		t.Fatal(err)
	}
	user, pass, err := b.svc.MintRunCredential(ctx, state, uuid.New(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	g, err := b.svc.AuthenticateRun(ctx, user, pass)
	if err != nil {
		t.Fatal(err)
	}
	return g, user, pass
}

func (b *bundle) lockCount(t *testing.T) int {
	t.Helper()
	var n int
	if err := b.pool.QueryRow(context.Background(), "SELECT count(*) FROM tf_state_locks").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// stateFile is a minimal Terraform state file.
func stateFile(serial int64, lineage string, extra string) []byte {
	return fmt.Appendf(nil, `{"version":4,"terraform_version":"1.11.4","serial":%d,"lineage":%q,"outputs":{},"resources":[],"check_results":null,"extra":%q}`, serial, lineage, extra)
}

func lockInfo(id, who string) []byte {
	b, _ := json.Marshal(map[string]string{"ID": id, "Operation": "OperationTypeApply", "Info": "", "Who": who, "Version": "1.11.4", "Created": "2030-01-02T03:04:05Z", "Path": ""})
	return b
}

// jsonEqual reports whether two JSON documents have the same value.
func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatalf("not JSON: %v: %s", err, a)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatalf("not JSON: %v: %s", err, b)
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return bytes.Equal(xb, yb)
}
