// Package statetest gives tests a real Terraform state backend: shardform's
// state store (package tfstate) on the test's database, served on loopback,
// and the http backend settings of a run for each workspace a test names.
package statetest

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shardform/shardform/seal"
	"github.com/shardform/shardform/store"
	"github.com/shardform/shardform/tfstate"
)

// Backends hands out backend settings, one state per workspace name.
type Backends struct {
	Service *tfstate.Service
	Base    string // the loopback server's base URL
	pool    *pgxpool.Pool
	org     uuid.UUID

	mu  sync.Mutex
	env map[string]map[string]string
}

// New serves a state store on pool until the test ends, sealing with a
// test key of its own. The states For hands out belong to provision
// requests of an organization of its own, made on first use.
func New(t testing.TB, pool *pgxpool.Pool) *Backends {
	t.Helper()
	sealer, err := seal.New(bytes.Repeat([]byte{9}, seal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	b := Serve(t, pool, sealer)
	if err := pool.QueryRow(context.Background(), "INSERT INTO organizations (name) VALUES ('statetest') RETURNING id").Scan(&b.org); err != nil {
		t.Fatal(err)
	}
	return b
}

// Serve serves a state store on pool sealed with sealer (the key of the
// API under test, so that both read the same states) on loopback until
// the test ends, as a worker process does.
func Serve(t testing.TB, pool *pgxpool.Pool, sealer *seal.Sealer) *Backends {
	t.Helper()
	svc := tfstate.New(store.NewStore(pool), sealer, time.Now, tfstate.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	lb, err := tfstate.ServeLoopback(ctx, svc)
	if err != nil {
		t.Fatal(err)
	}
	return &Backends{Service: svc, Base: lb.Base, pool: pool, env: map[string]map[string]string{}}
}

// For is the http backend settings of workspace name (the same for every
// call with that name): a provision request's state and a run credential.
func (b *Backends) For(t testing.TB, name string) map[string]string {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if env, ok := b.env[name]; ok {
		return env
	}
	ctx := context.Background()
	var id uuid.UUID
	if err := b.pool.QueryRow(ctx, `INSERT INTO provision_requests (organization_id, provider, region, instance_type, name, status)
		VALUES ($1, 'local', 'local', 'local-small', $2, 'pending') RETURNING id`, b.org, "n-"+uuid.NewString()[:8]).Scan(&id); err != nil {
		t.Fatal(err)
	}
	env := b.Provision(t, b.org, id)
	b.env[name] = env
	return env
}

// Provision is the http backend settings of a run of an existing
// provision request: its state and a fresh run credential.
func (b *Backends) Provision(t testing.TB, orgID, provisionID uuid.UUID) map[string]string {
	t.Helper()
	ctx := context.Background()
	state, err := b.Service.ProvisionState(ctx, orgID, provisionID)
	if err != nil {
		t.Fatal(err)
	}
	user, pass, err := b.Service.MintRunCredential(ctx, state, uuid.New(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tfstate.BackendEnv(b.Base, tfstate.Target{ProvisionID: provisionID}, user, pass)
}

// State is the latest state of workspace name, decrypted ("" when none).
func (b *Backends) State(t testing.TB, name string) string {
	t.Helper()
	env := b.For(t, name)
	g, err := b.Service.AuthenticateRun(context.Background(), env["TF_HTTP_USERNAME"], env["TF_HTTP_PASSWORD"])
	if err != nil {
		t.Fatal(err)
	}
	data, _, err := b.Service.Read(context.Background(), g)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
