package sshsign_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shardform/shardform/domain"
	"github.com/shardform/shardform/seal"
	"github.com/shardform/shardform/sshca"
	"github.com/shardform/shardform/sshsign"
	"github.com/shardform/shardform/store"
	"github.com/shardform/shardform/store/storetest"
	"github.com/shardform/shardform/worker"
)

// TestSignDeadlineFollowsClock: a request's deadline (the job's NotAfter,
// which the worker compares with the injected clock) is a time on the
// injected clock, not on time.Now: with a clock a year ahead, a deadline
// taken from time.Now had always passed, so every job was cancelled as
// expired. With a clock a year behind, the API still waits its real
// SignTimeout (not a wait that had ended a year ago).
func TestSignDeadlineFollowsClock(t *testing.T) {
	t.Parallel()
	const timeout = 10 * time.Second
	tests := []struct {
		name   string
		offset time.Duration
		host   bool
	}{
		{"user certificate, clock a year ahead", 365 * 24 * time.Hour, false},
		{"user certificate, clock a year behind", -365 * 24 * time.Hour, false},
		{"host certificate, clock a year ahead", 365 * 24 * time.Hour, true},
		{"host certificate, clock a year behind", -365 * 24 * time.Hour, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			pool := storetest.NewPool(t)
			now := time.Now().Add(tt.offset).UTC().Truncate(time.Second)
			sealer, err := seal.New(bytes.Repeat([]byte{7}, seal.KeySize))
			if err != nil {
				t.Fatal(err)
			}
			svc, err := sshsign.New(store.NewStore(pool), sshca.NewVault(sealer), sshsign.Options{
				SignTimeout: timeout, Now: func() time.Time { return now }, Context: ctx})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(svc.Close)
			client, err := worker.NewClient(pool, store.NewStore(pool), worker.Options{
				Work: true, SSH: svc, FetchPollInterval: 50 * time.Millisecond,
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			})
			if err != nil {
				t.Fatal(err)
			}
			svc.UseQueue(client)
			if err := client.Start(ctx); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				stop, cancel := context.WithTimeout(ctx, 30*time.Second)
				defer cancel()
				_ = client.Stop(stop)
			})

			var org, user uuid.UUID
			if err := pool.QueryRow(ctx, "INSERT INTO organizations (name) VALUES ('acme') RETURNING id").Scan(&org); err != nil {
				t.Fatal(err)
			}
			if err := pool.QueryRow(ctx, "INSERT INTO users (email, password_hash) VALUES ('ops@example.com', 'x') RETURNING id").Scan(&user); err != nil {
				t.Fatal(err)
			}
			p := &domain.Principal{OrgID: org, HasOrg: true, Email: "ops@example.com", UserID: user,
				Perms: domain.NewPermissionSet([]domain.Permission{domain.PermSSHSign, domain.PermSSHAdmin})}
			key := newPublicKey(t)
			var validAfter time.Time
			kind := sshsign.KindSign
			if tt.host {
				kind = sshsign.KindSignHost
				var node string
				if err := pool.QueryRow(ctx, `INSERT INTO nodes (organization_id, name, provider, region, instance_type, vcpu, memory_mb, disk_gb, ipv4, ipv6)
					VALUES ($1, 'web-1', 'local', 'local', 'local-small', 1, 512, 10, '192.0.2.1', '') RETURNING id`, org).Scan(&node); err != nil {
					t.Fatal(err)
				}
				signed, err := svc.SignHost(ctx, p, sshsign.HostSignRequest{PublicKey: key, NodeID: &node})
				if err != nil {
					t.Fatalf("SignHost: %v", err)
				}
				validAfter = signed.ValidAfter
			} else {
				signed, err := svc.Sign(ctx, p, sshsign.SignRequest{PublicKey: key, Principals: []string{"root"}})
				if err != nil {
					t.Fatalf("Sign: %v", err)
				}
				validAfter = signed.ValidAfter
			}
			if want := now.Add(-sshca.Backdate); !validAfter.Equal(want) {
				t.Errorf("valid after %s, want %s (the clock)", validAfter, want)
			}
			// The job's deadline is on the clock.
			var raw []byte
			if err := pool.QueryRow(ctx, "SELECT args FROM river_job WHERE kind = $1", kind).Scan(&raw); err != nil {
				t.Fatal(err)
			}
			var notAfter time.Time
			if tt.host {
				var a sshsign.HostSignArgs
				err = json.Unmarshal(raw, &a)
				notAfter = a.NotAfter
			} else {
				var a sshsign.SignArgs
				err = json.Unmarshal(raw, &a)
				notAfter = a.NotAfter
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := now.Add(timeout); !notAfter.Equal(want) {
				t.Errorf("job deadline %s, want %s (the clock plus the timeout)", notAfter, want)
			}
		})
	}
}
