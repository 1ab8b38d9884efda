package credentials_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shardform/shardform/credentials"
	"github.com/shardform/shardform/domain"
	"github.com/shardform/shardform/internal/fake/hcloudfake"
	"github.com/shardform/shardform/providers"
	"github.com/shardform/shardform/seal"
	"github.com/shardform/shardform/store"
	"github.com/shardform/shardform/store/storetest"
)

type bundle struct {
	svc  *credentials.Service
	pool *pgxpool.Pool
}

func setup(t *testing.T) *bundle {
	t.Helper()
	pool := storetest.NewPool(t)
	sealer, err := seal.New(bytes.Repeat([]byte{3}, seal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	svc := credentials.New(store.NewStore(pool), sealer, map[string]credentials.Verifier{
		"hetzner": providers.HetznerVerifier{Endpoint: hcloudfake.New(t, hcloudfake.Options{Token: "good-token-1234"}).URL},
	})
	return &bundle{svc: svc, pool: pool}
}

// principal makes an organization and a member of it with role.
func (b *bundle) principal(t *testing.T, role domain.Role) *domain.Principal {
	t.Helper()
	ctx := context.Background()
	var org, user uuid.UUID
	if err := b.pool.QueryRow(ctx, "INSERT INTO organizations (name) VALUES ('o') RETURNING id").Scan(&org); err != nil {
		t.Fatal(err)
	}
	if err := b.pool.QueryRow(ctx, "INSERT INTO users (email, password_hash) VALUES ($1, 'x') RETURNING id", uuid.NewString()+"@example.com").Scan(&user); err != nil {
		t.Fatal(err)
	}
	return &domain.Principal{UserID: user, OrgID: org, HasOrg: true, Role: role, Perms: domain.EffectivePermissions(role, nil)}
}

func TestCreateSealsAndHints(t *testing.T) {
	t.Parallel()
	b := setup(t)
	p := b.principal(t, domain.RoleAdmin)
	ctx := context.Background()
	c, err := b.svc.Create(ctx, p, credentials.Input{Name: "prod", Provider: "hetzner", Secret: credentials.Secret{"token": "good-token-1234"}})
	if err != nil {
		t.Fatal(err)
	}
	if c.Hint != "…1234" || !c.IsDefault || c.Provider != "hetzner" {
		t.Fatalf("created %+v", c)
	}
	var raw []byte
	if err := b.pool.QueryRow(ctx, "SELECT secret FROM credentials WHERE id = $1", c.ID).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte("good-token")) {
		t.Fatal("secret stored in plain text")
	}
	secret, err := b.svc.Secret(ctx, p.OrgID, c.ID)
	if err != nil || secret["token"] != "good-token-1234" {
		t.Fatalf("Secret = %v, %v", secret, err)
	}
	// A second one of the same provider is not the default until made so.
	c2, err := b.svc.Create(ctx, p, credentials.Input{Name: "staging", Provider: "hetzner", Secret: credentials.Secret{"token": "other-token-9999"}})
	if err != nil || c2.IsDefault {
		t.Fatalf("second credential %+v, %v", c2, err)
	}
	if _, err := b.svc.SetDefault(ctx, p, c2.ID); err != nil {
		t.Fatal(err)
	}
	list, total, err := b.svc.List(ctx, p, "hetzner", domain.Page{Page: 1, Limit: 20})
	if err != nil || total != 2 {
		t.Fatal(err, total)
	}
	defaults := 0
	for _, c := range list {
		if c.IsDefault {
			defaults++
			if c.ID != c2.ID {
				t.Errorf("default is %s, want %s", c.ID, c2.ID)
			}
		}
	}
	if defaults != 1 {
		t.Errorf("%d defaults", defaults)
	}
}

func TestValidation(t *testing.T) {
	t.Parallel()
	b := setup(t)
	p := b.principal(t, domain.RoleAdmin)
	tests := []struct {
		name  string
		in    credentials.Input
		field string
	}{
		{"no name", credentials.Input{Provider: "hetzner", Secret: credentials.Secret{"token": "x"}}, "name"},
		{"unknown provider", credentials.Input{Name: "a", Provider: "gcp", Secret: credentials.Secret{"token": "x"}}, "provider"},
		{"no secret", credentials.Input{Name: "a", Provider: "hetzner"}, "secret"},
		{"missing field", credentials.Input{Name: "a", Provider: "aws", Secret: credentials.Secret{"access_key_id": "AKIA"}}, "secret.secret_access_key"},
		{"unknown field", credentials.Input{Name: "a", Provider: "cloudflare", Secret: credentials.Secret{"api_token": "x", "email": "y"}}, "secret.email"},
		{"multi-line", credentials.Input{Name: "a", Provider: "hetzner", Secret: credentials.Secret{"token": "a\nb"}}, "secret.token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := b.svc.Create(context.Background(), p, tt.in)
			var verr *domain.ValidationError
			if !errors.As(err, &verr) || verr.Field != tt.field {
				t.Fatalf("err = %v, want a validation error naming %s", err, tt.field)
			}
		})
	}
	var n int
	if err := b.pool.QueryRow(context.Background(), "SELECT count(*) FROM credentials").Scan(&n); err != nil || n != 0 {
		t.Errorf("%d credentials stored after rejected input", n)
	}
}

func TestIsolationAndPermissions(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	owner := b.principal(t, domain.RoleOwner)
	stranger := b.principal(t, domain.RoleOwner)
	viewer := b.principal(t, domain.RoleViewer)
	viewer.OrgID = owner.OrgID
	c, err := b.svc.Create(ctx, owner, credentials.Input{Name: "prod", Provider: "cloudflare", Secret: credentials.Secret{"api_token": "cf-token-abcd"}})
	if err != nil {
		t.Fatal(err)
	}
	for name, call := range map[string]func() error{
		"get":     func() error { _, err := b.svc.Get(ctx, stranger, c.ID); return err },
		"update":  func() error { _, err := b.svc.Update(ctx, stranger, c.ID, credentials.Input{Name: "x"}); return err },
		"delete":  func() error { return b.svc.Delete(ctx, stranger, c.ID) },
		"default": func() error { _, err := b.svc.SetDefault(ctx, stranger, c.ID); return err },
		"verify":  func() error { _, err := b.svc.Verify(ctx, stranger, c.ID); return err },
	} {
		if err := call(); !errors.Is(err, domain.ErrNotFound) {
			t.Errorf("%s by another organization: %v, want not found", name, err)
		}
	}
	if _, err := b.svc.Get(ctx, viewer, c.ID); err != nil {
		t.Errorf("viewer cannot read: %v", err)
	}
	if err := b.svc.Delete(ctx, viewer, c.ID); !errors.Is(err, domain.ErrForbidden) {
		t.Errorf("viewer delete: %v, want forbidden", err)
	}
}

func TestUpdateAndVerify(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	p := b.principal(t, domain.RoleAdmin)
	c, err := b.svc.Create(ctx, p, credentials.Input{Name: "prod", Provider: "hetzner", Secret: credentials.Secret{"token": "bad-token-0000"}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := b.svc.Verify(ctx, p, c.ID)
	if err != nil || res.OK || !strings.Contains(res.Error, "unauthorized") || res.Credential.VerifiedAt == nil {
		t.Fatalf("verify bad token: %+v, %v", res, err)
	}
	up, err := b.svc.Update(ctx, p, c.ID, credentials.Input{Secret: credentials.Secret{"token": "good-token-1234"}})
	if err != nil || up.Hint != "…1234" || up.VerifiedAt != nil || up.Name != "prod" {
		t.Fatalf("update %+v, %v", up, err)
	}
	if _, err := b.svc.Update(ctx, p, c.ID, credentials.Input{Provider: "aws"}); err == nil {
		t.Error("provider change accepted")
	}
	res, err = b.svc.Verify(ctx, p, c.ID)
	if err != nil || !res.OK || res.Error != "" {
		t.Fatalf("verify good token: %+v, %v", res, err)
	}
	renamed, err := b.svc.Update(ctx, p, c.ID, credentials.Input{Name: "prod-eu"})
	if err != nil || renamed.VerifiedAt == nil || renamed.Hint != "…1234" {
		t.Errorf("a rename lost the verification or the secret: %+v, %v", renamed, err)
	}
	aws, err := b.svc.Create(ctx, p, credentials.Input{Name: "aws", Provider: "aws", Secret: credentials.Secret{"access_key_id": "AKIAEXAMPLE", "secret_access_key": "abcdefghijklmnop"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.svc.Verify(ctx, p, aws.ID); !errors.Is(err, domain.ErrUnprocessable) {
		t.Errorf("verify without a verifier: %v", err)
	}
	if err := b.svc.Delete(ctx, p, c.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := b.svc.Get(ctx, p, c.ID); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("after delete: %v", err)
	}
}
