package tfstate_test

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/shardform/shardform/tfstate"
)

// createPGStates makes the old pg backend's table the way the backend does.
func (b *bundle) createPGStates(t *testing.T) {
	t.Helper()
	for _, stmt := range []string{
		"CREATE SCHEMA IF NOT EXISTS terraform_state",
		"CREATE TABLE IF NOT EXISTS terraform_state.states (id bigserial primary key, name text, data text)",
		"CREATE UNIQUE INDEX IF NOT EXISTS states_by_name ON terraform_state.states (name)",
	} {
		if _, err := b.pool.Exec(context.Background(), stmt); err != nil {
			t.Fatal(err)
		}
	}
}

func (b *bundle) pgState(t *testing.T, name, data string) {
	t.Helper()
	if _, err := b.pool.Exec(context.Background(), "INSERT INTO terraform_state.states (name, data) VALUES ($1, $2)", name, data); err != nil {
		t.Fatal(err)
	}
}

// plainRows names the old table's rows, in order, comma-separated.
func (b *bundle) plainRows(t *testing.T) string {
	t.Helper()
	var names string
	if err := b.pool.QueryRow(context.Background(), "SELECT coalesce(string_agg(name, ',' ORDER BY name COLLATE \"C\"), '') FROM terraform_state.states").Scan(&names); err != nil {
		t.Fatal(err)
	}
	return names
}

func TestMigrateFromPG(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("no pg schema", func(t *testing.T) {
		t.Parallel()
		b := setup(t, tfstate.Options{})
		if n, err := b.svc.MigrateFromPG(ctx, ""); err != nil || n != 0 {
			t.Fatalf("MigrateFromPG = %d, %v", n, err)
		}
	})

	t.Run("imports once", func(t *testing.T) {
		t.Parallel()
		b := setup(t, tfstate.Options{})
		b.createPGStates(t)
		org, other := b.org(t), b.org(t)
		p1, p2, empty, written := b.provision(t, org), b.provision(t, other), b.provision(t, org), b.provision(t, org)
		s1, s2 := stateFile(3, "lin-1", "one"), stateFile(7, "lin-2", "two")
		b.pgState(t, p1.String(), string(s1))
		b.pgState(t, p2.String(), string(s2))
		b.pgState(t, empty.String(), "")
		b.pgState(t, "default", string(stateFile(1, "lin-d", "")))
		goneName := uuid.NewString()
		b.pgState(t, goneName, string(stateFile(1, "lin-gone", ""))) // no such request
		// A request whose state the http backend wrote already keeps it.
		g, _, _ := b.runGrant(t, org, written)
		newer := stateFile(9, "lin-new", "")
		if err := b.svc.Write(ctx, g, "", newer); err != nil {
			t.Fatal(err)
		}
		b.pgState(t, written.String(), string(stateFile(2, "lin-old", "")))

		for i, want := range []int{2, 0} {
			if n, err := b.svc.MigrateFromPG(ctx, ""); err != nil || n != want {
				t.Fatalf("MigrateFromPG #%d = %d, %v; want %d", i+1, n, err, want)
			}
		}
		for _, c := range []struct {
			org, prov uuid.UUID
			data      []byte
			serial    int64
		}{{org, p1, s1, 3}, {other, p2, s2, 7}} {
			vs, err := b.svc.Versions(ctx, c.org, c.prov)
			if err != nil || len(vs) != 1 || vs[0].Version != 1 || vs[0].Serial != c.serial || vs[0].RunID.Valid {
				t.Fatalf("versions of %s: %+v, %v", c.prov, vs, err)
			}
			_, data, err := b.svc.ReadVersion(ctx, c.org, c.prov, 1)
			if err != nil || !bytes.Equal(data, c.data) {
				t.Fatalf("imported state %s, %v", data, err)
			}
		}
		if vs, err := b.svc.Versions(ctx, org, empty); err != nil || len(vs) != 0 {
			t.Fatalf("an empty workspace was imported: %+v, %v", vs, err)
		}
		if data, _, err := b.svc.Read(ctx, g); err != nil || !bytes.Equal(data, newer) {
			t.Fatalf("the http backend's state was overwritten: %s, %v", data, err)
		}
		var states int
		if err := b.pool.QueryRow(ctx, "SELECT count(*) FROM tf_states").Scan(&states); err != nil || states != 3 {
			t.Fatalf("%d states (%v), want 3", states, err)
		}
		// The imported and superseded states are no longer in plain text;
		// the workspaces of no request are not shardform's to delete.
		if got, want := b.plainRows(t), strings.Join(slices.Sorted(slices.Values([]string{"default", goneName})), ","); got != want {
			t.Fatalf("plain-text rows left: %s, want %s", got, want)
		}
		// ImportPG itself is idempotent too.
		if ok, err := b.svc.ImportPG(ctx, org, p1, stateFile(4, "lin-1", "")); err != nil || ok {
			t.Fatalf("ImportPG of an imported state = %v, %v", ok, err)
		}
	})

	t.Run("a bad row does not stop the others", func(t *testing.T) {
		t.Parallel()
		b := setup(t, tfstate.Options{})
		b.createPGStates(t)
		org := b.org(t)
		bad, good := b.provision(t, org), b.provision(t, org)
		b.pgState(t, bad.String(), "not json")
		b.pgState(t, good.String(), string(stateFile(1, "l", "")))
		n, err := b.svc.MigrateFromPG(ctx, "")
		if n != 1 || err == nil || !strings.Contains(err.Error(), bad.String()) {
			t.Fatalf("MigrateFromPG = %d, %v; want 1 and an error naming %s", n, err, bad)
		}
		if got := b.plainRows(t); got != bad.String() {
			t.Fatalf("plain-text rows left: %s, want only the bad one", got)
		}
	})

	t.Run("another schema", func(t *testing.T) {
		t.Parallel()
		b := setup(t, tfstate.Options{})
		if _, err := b.pool.Exec(ctx, `CREATE SCHEMA "old state"; CREATE TABLE "old state".states (id bigserial primary key, name text, data text)`); err != nil {
			t.Fatal(err)
		}
		org := b.org(t)
		p := b.provision(t, org)
		if _, err := b.pool.Exec(ctx, `INSERT INTO "old state".states (name, data) VALUES ($1, $2)`, p.String(), string(stateFile(1, "l", ""))); err != nil {
			t.Fatal(err)
		}
		if n, err := b.svc.MigrateFromPG(ctx, "old state"); err != nil || n != 1 {
			t.Fatalf("MigrateFromPG = %d, %v", n, err)
		}
	})
}
