package tfstate_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shardform/shardform/domain"
	"github.com/shardform/shardform/tfstate"
)

func TestWrite(t *testing.T) {
	t.Parallel()
	const lineage = "3f1c8c5e-0000-4000-8000-000000000001"
	tests := []struct {
		name string
		// prepare runs before the write under test (on a state holding
		// serial 5 of lineage).
		prepare func(t *testing.T, b *bundle, g tfstate.Grant)
		lockID  string
		data    []byte
		grant   func(g tfstate.Grant) tfstate.Grant
		wantErr error // nil: success
		wantMsg string
		// wantVersions is the number of versions afterwards.
		wantVersions int
	}{
		{name: "next serial", data: stateFile(6, lineage, "b"), wantVersions: 2},
		{name: "same serial same content is a no-op", data: stateFile(5, lineage, "a"), wantVersions: 1},
		{name: "same serial other content", data: stateFile(5, lineage, "b"), wantErr: domain.ErrConflict, wantMsg: "serial 5 is stored already", wantVersions: 1},
		{name: "serial backwards", data: stateFile(4, lineage, "b"), wantErr: domain.ErrConflict, wantMsg: "older than the stored state's 5", wantVersions: 1},
		{name: "lineage mismatch", data: stateFile(9, "other-lineage", "b"), wantErr: domain.ErrConflict, wantMsg: "lineage", wantVersions: 1},
		{name: "not a state file", data: []byte(`[1,2]`), wantErr: &domain.ValidationError{}, wantVersions: 1},
		{name: "no serial", data: []byte(`{"lineage":"x"}`), wantErr: &domain.ValidationError{}, wantMsg: "serial: is required", wantVersions: 1},
		{
			name: "read-only grant", data: stateFile(6, lineage, "b"), wantErr: domain.ErrForbidden, wantVersions: 1,
			grant: func(g tfstate.Grant) tfstate.Grant { g.Write = false; return g },
		},
		{
			name: "locked by another ID", data: stateFile(6, lineage, "b"), lockID: "mine",
			prepare: func(t *testing.T, b *bundle, g tfstate.Grant) {
				if err := b.svc.Lock(context.Background(), g, lockInfo("theirs", "them@host")); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: domain.ErrConflict, wantMsg: `locked by lock "theirs" (held by "them@host"`, wantVersions: 1,
		},
		{
			name: "locked, no ID", data: stateFile(6, lineage, "b"),
			prepare: func(t *testing.T, b *bundle, g tfstate.Grant) {
				if err := b.svc.Lock(context.Background(), g, lockInfo("theirs", "them@host")); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: domain.ErrConflict, wantMsg: "must carry its lock ID", wantVersions: 1,
		},
		{
			name: "locked by the writer", data: stateFile(6, lineage, "b"), lockID: "mine", wantVersions: 2,
			prepare: func(t *testing.T, b *bundle, g tfstate.Grant) {
				if err := b.svc.Lock(context.Background(), g, lockInfo("mine", "me@host")); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "expired lock of another ID", data: stateFile(6, lineage, "b"), lockID: "mine", wantVersions: 2,
			prepare: func(t *testing.T, b *bundle, g tfstate.Grant) {
				if err := b.svc.Lock(context.Background(), g, lockInfo("theirs", "them@host")); err != nil {
					t.Fatal(err)
				}
				b.clock.Advance(tfstate.DefaultLockLease + time.Second)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, tfstate.Options{})
			ctx := context.Background()
			org := b.org(t)
			g, _, _ := b.runGrant(t, org, b.provision(t, org))
			if err := b.svc.Write(ctx, g, "", stateFile(5, lineage, "a")); err != nil {
				t.Fatal(err)
			}
			if tt.prepare != nil {
				tt.prepare(t, b, g)
			}
			if tt.grant != nil {
				g = tt.grant(g)
			}
			err := b.svc.Write(ctx, g, tt.lockID, tt.data)
			checkErr(t, err, tt.wantErr, tt.wantMsg)
			vs, err := b.svc.Versions(ctx, org, g.ProvisionID.UUID)
			if err != nil {
				t.Fatal(err)
			}
			if len(vs) != tt.wantVersions {
				t.Fatalf("%d versions, want %d: %+v", len(vs), tt.wantVersions, vs)
			}
			data, found, err := b.svc.Read(ctx, g)
			if err != nil || !found {
				t.Fatalf("Read: %v found=%v", err, found)
			}
			want := stateFile(5, lineage, "a")
			if tt.wantErr == nil && tt.wantVersions == 2 {
				want = tt.data
			}
			if !bytes.Equal(data, want) {
				t.Fatalf("Read = %s, want %s", data, want)
			}
		})
	}
}

func checkErr(t *testing.T, err, want error, msg string) {
	t.Helper()
	switch {
	case want == nil:
		if err != nil {
			t.Fatalf("err = %v, want none", err)
		}
		return
	case err == nil:
		t.Fatalf("no error, want %v", want)
	}
	var ve *domain.ValidationError
	if _, isValidation := want.(*domain.ValidationError); isValidation {
		if !errors.As(err, &ve) {
			t.Fatalf("err = %v (%T), want a validation error", err, err)
		}
	} else if !errors.Is(err, want) {
		t.Fatalf("err = %v, want %v", err, want)
	}
	if !strings.Contains(err.Error(), msg) {
		t.Fatalf("err = %q, want it to contain %q", err, msg)
	}
}

func TestWriteRecordsVersionsSealed(t *testing.T) {
	t.Parallel()
	b := setup(t, tfstate.Options{})
	ctx := context.Background()
	org := b.org(t)
	prov := b.provision(t, org)
	g, _, _ := b.runGrant(t, org, prov)
	const lineage = "lineage-in-plain-sight"
	for serial := int64(1); serial <= 3; serial++ {
		if err := b.svc.Write(ctx, g, "", stateFile(serial, lineage, "secret-value")); err != nil {
			t.Fatal(err)
		}
	}
	vs, err := b.svc.Versions(ctx, org, prov)
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 3 {
		t.Fatalf("versions %+v", vs)
	}
	for i, v := range vs {
		want := stateFile(int64(3-i), lineage, "secret-value")
		if v.Version != 3-i || v.Serial != int64(3-i) || v.Lineage != lineage || v.RunID.UUID != g.RunID || v.Size != int64(len(want)) || v.Checksum != tfstate.Checksum(want) {
			t.Fatalf("version %d = %+v", i, v)
		}
		got, data, err := b.svc.ReadVersion(ctx, org, prov, v.Version)
		if err != nil || !bytes.Equal(data, want) || got != v {
			t.Fatalf("ReadVersion(%d) = %+v, %s, %v", v.Version, got, data, err)
		}
	}
	// The JSON the API answers with: snake_case, run_id null without a run.
	js, err := json.Marshal(tfstate.Version{Version: 1, Serial: 2, Lineage: "l", Checksum: "c", Size: 3, CreatedAt: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)})
	if err != nil || string(js) != `{"version":1,"serial":2,"lineage":"l","checksum":"c","run_id":null,"size":3,"created_at":"2030-01-01T00:00:00Z"}` {
		t.Fatalf("Version JSON %s, %v", js, err)
	}
	rows, err := b.pool.Query(ctx, "SELECT sealed FROM tf_state_versions")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var sealed []byte
		if err := rows.Scan(&sealed); err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(sealed, []byte(lineage)) || bytes.Contains(sealed, []byte("secret-value")) {
			t.Fatal("a version is stored in plain text")
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	// A sealed version copied onto another does not open: each is bound
	// to its state and number.
	if _, err := b.pool.Exec(ctx, "UPDATE tf_state_versions SET sealed = (SELECT sealed FROM tf_state_versions WHERE version = 1) WHERE version = 3"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.svc.Read(ctx, g); err == nil {
		t.Fatal("Read opened a version sealed for another")
	}
}

func TestPruneKeepsVersions(t *testing.T) {
	t.Parallel()
	b := setup(t, tfstate.Options{KeepVersions: 3})
	ctx := context.Background()
	org := b.org(t)
	prov := b.provision(t, org)
	g, _, _ := b.runGrant(t, org, prov)
	for serial := int64(1); serial <= 5; serial++ {
		if err := b.svc.Write(ctx, g, "", stateFile(serial, "l", "")); err != nil {
			t.Fatal(err)
		}
	}
	vs, err := b.svc.Versions(ctx, org, prov)
	if err != nil {
		t.Fatal(err)
	}
	var got []int
	for _, v := range vs {
		got = append(got, v.Version)
	}
	if len(got) != 3 || got[0] != 5 || got[1] != 4 || got[2] != 3 {
		t.Fatalf("versions kept %v, want [5 4 3]", got)
	}
	for _, n := range []int{1, 2} {
		if _, _, err := b.svc.ReadVersion(ctx, org, prov, n); !errors.Is(err, domain.ErrNotFound) {
			t.Fatalf("ReadVersion(%d) err = %v, want not found", n, err)
		}
	}
	var rows int
	if err := b.pool.QueryRow(ctx, "SELECT count(*) FROM tf_state_versions").Scan(&rows); err != nil || rows != 3 {
		t.Fatalf("%d version rows (%v), want 3", rows, err)
	}
	// Numbering goes on after pruning.
	if err := b.svc.Write(ctx, g, "", stateFile(6, "l", "")); err != nil {
		t.Fatal(err)
	}
	if vs, _ := b.svc.Versions(ctx, org, prov); len(vs) != 3 || vs[0].Version != 6 || vs[2].Version != 4 {
		t.Fatalf("after a sixth write: %+v", vs)
	}
}

func TestVersionsAcrossOrganizations(t *testing.T) {
	t.Parallel()
	b := setup(t, tfstate.Options{})
	ctx := context.Background()
	org, other := b.org(t), b.org(t)
	prov := b.provision(t, org)
	g, _, _ := b.runGrant(t, org, prov)
	if err := b.svc.Write(ctx, g, "", stateFile(1, "l", "")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		call func() error
	}{
		{"Versions", func() error { _, err := b.svc.Versions(ctx, other, prov); return err }},
		{"ReadVersion", func() error { _, _, err := b.svc.ReadVersion(ctx, other, prov, 1); return err }},
		{"ProvisionState", func() error { _, err := b.svc.ProvisionState(ctx, other, prov); return err }},
		{"ProvisionGrant", func() error { _, err := b.svc.ProvisionGrant(ctx, other, prov); return err }},
		{"unknown request", func() error { _, err := b.svc.Versions(ctx, org, uuid.New()); return err }},
		{"missing version", func() error { _, _, err := b.svc.ReadVersion(ctx, org, prov, 2); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); !errors.Is(err, domain.ErrNotFound) {
				t.Fatalf("err = %v, want not found", err)
			}
		})
	}
	// A user's read grant reads; a request without state has no versions.
	rg, err := b.svc.ProvisionGrant(ctx, org, prov)
	if err != nil || rg.Write {
		t.Fatalf("ProvisionGrant = %+v, %v", rg, err)
	}
	if data, found, err := b.svc.Read(ctx, rg); err != nil || !found || !bytes.Equal(data, stateFile(1, "l", "")) {
		t.Fatalf("Read with a user's grant = %s, %v, %v", data, found, err)
	}
	if err := b.svc.Lock(ctx, rg, lockInfo("x", "u")); !errors.Is(err, domain.ErrForbidden) {
		t.Fatalf("Lock with a read grant: %v, want forbidden", err)
	}
	if vs, err := b.svc.Versions(ctx, org, b.provision(t, org)); err != nil || len(vs) != 0 {
		t.Fatalf("Versions of a request without state = %+v, %v", vs, err)
	}
}

func TestLock(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		name string
		// act runs after run A locked the state with ID "a"; then a lock by
		// run B (ID "b") is tried.
		act       func(t *testing.T, b *bundle, a, bg tfstate.Grant)
		wantTaken bool // B gets the lock
	}{
		{name: "held", act: func(*testing.T, *bundle, tfstate.Grant, tfstate.Grant) {}},
		{
			name: "lease expired", wantTaken: true,
			act: func(_ *testing.T, b *bundle, _, _ tfstate.Grant) { b.clock.Advance(tfstate.DefaultLockLease) },
		},
		{
			name: "renewed lease", wantTaken: false,
			act: func(t *testing.T, b *bundle, a, _ tfstate.Grant) {
				b.clock.Advance(tfstate.DefaultLockLease - time.Second)
				if n, err := b.svc.Renew(ctx, a.RunID, b.clock.Now().Add(tfstate.DefaultLockLease)); err != nil || n != 1 {
					t.Fatalf("Renew = %d, %v", n, err)
				}
				b.clock.Advance(tfstate.DefaultLockLease - time.Second)
			},
		},
		{
			name: "holder's run released", wantTaken: true,
			act: func(t *testing.T, b *bundle, a, _ tfstate.Grant) {
				if n, err := b.svc.ReleaseRun(ctx, a.RunID); err != nil || n != 1 {
					t.Fatalf("ReleaseRun = %d, %v", n, err)
				}
			},
		},
		{
			name: "another run released", wantTaken: false,
			act: func(t *testing.T, b *bundle, _, bg tfstate.Grant) {
				if n, err := b.svc.ReleaseRun(ctx, bg.RunID); err != nil || n != 0 {
					t.Fatalf("ReleaseRun = %d, %v", n, err)
				}
			},
		},
		{
			name: "unlocked", wantTaken: true,
			act: func(t *testing.T, b *bundle, a, _ tfstate.Grant) {
				if err := b.svc.Unlock(ctx, a, lockInfo("a", "a@host")); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "unlock with another ID", wantTaken: false,
			act: func(t *testing.T, b *bundle, a, _ tfstate.Grant) {
				var locked *tfstate.LockedError
				err := b.svc.Unlock(ctx, a, lockInfo("c", "c@host"))
				if !errors.As(err, &locked) || locked.LockID != "a" || !jsonEqual(t, locked.Info, lockInfo("a", "a@host")) || !errors.Is(err, domain.ErrConflict) {
					t.Fatalf("Unlock with another ID: %v", err)
				}
			},
		},
		{
			name: "force unlock", wantTaken: true,
			act: func(t *testing.T, b *bundle, a, _ tfstate.Grant) {
				if err := b.svc.Unlock(ctx, a, nil); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "locked again by its holder", wantTaken: false,
			act: func(t *testing.T, b *bundle, a, _ tfstate.Grant) {
				b.clock.Advance(tfstate.DefaultLockLease - time.Second)
				if err := b.svc.Lock(ctx, a, lockInfo("a", "a@host")); err != nil {
					t.Fatalf("relock by the holder: %v", err)
				}
				b.clock.Advance(tfstate.DefaultLockLease - time.Second)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, tfstate.Options{})
			org := b.org(t)
			prov := b.provision(t, org)
			a, _, _ := b.runGrant(t, org, prov)
			bg, _, _ := b.runGrant(t, org, prov)
			if err := b.svc.Lock(ctx, a, lockInfo("a", "a@host")); err != nil {
				t.Fatal(err)
			}
			tt.act(t, b, a, bg)
			err := b.svc.Lock(ctx, bg, lockInfo("b", "b@host"))
			if tt.wantTaken {
				if err != nil {
					t.Fatalf("Lock by B: %v, want it taken", err)
				}
				return
			}
			var locked *tfstate.LockedError
			if !errors.As(err, &locked) || locked.LockID != "a" || !jsonEqual(t, locked.Info, lockInfo("a", "a@host")) {
				t.Fatalf("Lock by B: %v, want locked by a", err)
			}
		})
	}
}

func TestLockInput(t *testing.T) {
	t.Parallel()
	b := setup(t, tfstate.Options{})
	ctx := context.Background()
	org := b.org(t)
	g, _, _ := b.runGrant(t, org, b.provision(t, org))
	tests := []struct {
		name string
		info string
		rule string
	}{
		{"empty", "", "lock_info"},
		{"not an object", `"x"`, "lock_info"},
		{"no ID", `{"Who":"x"}`, "ID: is required"},
		{"control character", `{"ID":"a\u0007b"}`, "ID: must not contain control characters"},
		{"too long", `{"ID":"` + strings.Repeat("x", tfstate.MaxLockInfoSize) + `"}`, "lock_info: must be at most"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := b.svc.Lock(ctx, g, []byte(tt.info))
			checkErr(t, err, &domain.ValidationError{}, tt.rule)
		})
	}
	if n := b.lockCount(t); n != 0 {
		t.Fatalf("%d locks after bad input", n)
	}
}

func TestRunCredentials(t *testing.T) {
	t.Parallel()
	b := setup(t, tfstate.Options{})
	ctx := context.Background()
	org := b.org(t)
	prov := b.provision(t, org)
	state, err := b.svc.ProvisionState(ctx, org, prov)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := b.svc.ProvisionState(ctx, org, prov); err != nil || again != state {
		t.Fatalf("ProvisionState twice = %s, %s (%v)", state, again, err)
	}
	run := uuid.New()
	user, pass, err := b.svc.MintRunCredential(ctx, state, run, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if user != "run-"+run.String() || !strings.HasPrefix(pass, tfstate.RunPasswordPrefix) {
		t.Fatalf("credential %q %q", user, pass)
	}
	var stored []byte
	if err := b.pool.QueryRow(ctx, "SELECT secret_hash FROM tf_run_credentials").Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(stored, []byte(pass)) || len(stored) != 32 {
		t.Fatalf("stored secret %x", stored)
	}
	g, err := b.svc.AuthenticateRun(ctx, user, pass)
	want := tfstate.Grant{StateID: state, OrganizationID: org, ProvisionID: uuid.NullUUID{UUID: prov, Valid: true}, RunID: run, Write: true}
	if err != nil || g != want {
		t.Fatalf("AuthenticateRun = %+v, %v; want %+v", g, err, want)
	}
	tests := []struct {
		name       string
		user, pass string
		advance    time.Duration
	}{
		{"wrong password", user, pass + "x", 0},
		{"other run", "run-" + uuid.NewString(), pass, 0},
		{"not a run", "admin", pass, 0},
		{"no prefix", user, strings.TrimPrefix(pass, tfstate.RunPasswordPrefix), 0},
		{"empty", "", "", 0},
		{"expired", user, pass, time.Minute}, // last: moves the clock
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b.clock.Advance(tt.advance)
			if _, err := b.svc.AuthenticateRun(ctx, tt.user, tt.pass); !errors.Is(err, domain.ErrUnauthenticated) {
				t.Fatalf("err = %v, want unauthenticated", err)
			}
		})
	}
	// A new credential sweeps the state's expired ones; revoking ends a run's.
	if _, _, err := b.svc.MintRunCredential(ctx, state, run, time.Minute); err != nil {
		t.Fatal(err)
	}
	if n, err := b.svc.RevokeRunCredentials(ctx, run); err != nil || n != 1 {
		t.Fatalf("RevokeRunCredentials = %d, %v; want 1 (the expired one swept)", n, err)
	}
	if _, _, err := b.svc.MintRunCredential(ctx, uuid.New(), run, time.Minute); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("credential for an unknown state: %v", err)
	}
	if _, _, err := b.svc.MintRunCredential(ctx, state, run, 0); err == nil {
		t.Fatal("credential with no lifetime")
	}
}

func TestCustomState(t *testing.T) {
	t.Parallel()
	b := setup(t, tfstate.Options{})
	ctx := context.Background()
	org, other := b.org(t), b.org(t)
	if _, err := b.svc.CustomGrant(ctx, org, "Bad_Name", true); !errors.As(err, new(*domain.ValidationError)) {
		t.Fatalf("bad name: %v", err)
	}
	g, err := b.svc.CustomGrant(ctx, org, "network", true)
	if err != nil || g.StateID != uuid.Nil {
		t.Fatalf("CustomGrant = %+v, %v", g, err)
	}
	if _, found, err := b.svc.Read(ctx, g); err != nil || found {
		t.Fatalf("Read before the first write: %v, %v", found, err)
	}
	var states int
	if err := b.pool.QueryRow(ctx, "SELECT count(*) FROM tf_states").Scan(&states); err != nil || states != 0 {
		t.Fatalf("%d states after a read (%v)", states, err)
	}
	if err := b.svc.Lock(ctx, g, lockInfo("u1", "user@laptop")); err != nil {
		t.Fatal(err)
	}
	if err := b.svc.Write(ctx, g, "u1", stateFile(1, "l", "")); err != nil {
		t.Fatal(err)
	}
	// A user's lock has the long lease: it outlives a run's.
	b.clock.Advance(time.Hour)
	g2, err := b.svc.CustomGrant(ctx, org, "network", true)
	if err != nil || g2.StateID == uuid.Nil {
		t.Fatalf("CustomGrant after the write = %+v, %v", g2, err)
	}
	if err := b.svc.Lock(ctx, g2, lockInfo("u2", "other@laptop")); !errors.As(err, new(*tfstate.LockedError)) {
		t.Fatalf("second lock after an hour: %v, want locked", err)
	}
	if err := b.svc.Unlock(ctx, g2, lockInfo("u1", "user@laptop")); err != nil {
		t.Fatal(err)
	}
	ro, err := b.svc.CustomGrant(ctx, org, "network", false)
	if err != nil {
		t.Fatal(err)
	}
	if data, found, err := b.svc.Read(ctx, ro); err != nil || !found || !bytes.Equal(data, stateFile(1, "l", "")) {
		t.Fatalf("Read = %s, %v, %v", data, found, err)
	}
	if err := b.svc.Write(ctx, ro, "", stateFile(2, "l", "")); !errors.Is(err, domain.ErrForbidden) {
		t.Fatalf("Write with a read grant: %v", err)
	}
	// The same name in another organization is another state.
	og, err := b.svc.CustomGrant(ctx, other, "network", false)
	if err != nil || og.StateID != uuid.Nil {
		t.Fatalf("other organization's grant = %+v, %v", og, err)
	}
	if _, found, err := b.svc.Read(ctx, og); err != nil || found {
		t.Fatalf("other organization reads %v, %v", found, err)
	}
}

// TestConcurrent races lockers and writers on one state: exactly one lock
// is taken, and writers of the same next serial store one version.
func TestConcurrent(t *testing.T) {
	t.Parallel()
	const n = 8
	tests := []struct {
		name  string
		grant func(t *testing.T, b *bundle, org uuid.UUID) tfstate.Grant
	}{
		{"custom state created by the race", func(t *testing.T, b *bundle, org uuid.UUID) tfstate.Grant {
			g, err := b.svc.CustomGrant(context.Background(), org, "shared", true)
			if err != nil {
				t.Fatal(err)
			}
			return g
		}},
		{"provision state", func(t *testing.T, b *bundle, org uuid.UUID) tfstate.Grant {
			g, _, _ := b.runGrant(t, org, b.provision(t, org))
			return g
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, tfstate.Options{})
			ctx := context.Background()
			org := b.org(t)
			g := tt.grant(t, b, org)
			lockErrs := make([]error, n)
			writeErrs := make([]error, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() { lockErrs[i] = b.svc.Lock(ctx, g, lockInfo(fmt.Sprint("l", i), "w")) })
			}
			wg.Wait()
			taken := -1
			for i, err := range lockErrs {
				var locked *tfstate.LockedError
				switch {
				case err == nil && taken < 0:
					taken = i
				case err == nil:
					t.Fatalf("locks %d and %d both taken", taken, i)
				case !errors.As(err, &locked):
					t.Fatalf("lock %d: %v", i, err)
				}
			}
			if taken < 0 {
				t.Fatal("no lock taken")
			}
			for i := range n {
				wg.Go(func() { writeErrs[i] = b.svc.Write(ctx, g, fmt.Sprint("l", taken), stateFile(1, "lin", "")) })
			}
			wg.Wait()
			for i, err := range writeErrs {
				if err != nil {
					t.Fatalf("write %d: %v", i, err)
				}
			}
			var versions, states int
			if err := b.pool.QueryRow(ctx, "SELECT count(*), count(DISTINCT state_id) FROM tf_state_versions").Scan(&versions, &states); err != nil || versions != 1 || states != 1 {
				t.Fatalf("%d versions of %d states (%v), want 1 of 1", versions, states, err)
			}
		})
	}
}
