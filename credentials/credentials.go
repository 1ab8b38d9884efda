// Package credentials keeps an organization's cloud credentials (Hetzner,
// AWS, Cloudflare). Secret fields are sealed under the master key
// (AES-256-GCM, bound to the credential's id) before they reach the
// database; the API shows only a hint (the last characters). Verify asks
// the provider's real API whether a credential works.
package credentials

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/shardform/shardform/domain"
	"github.com/shardform/shardform/seal"
	"github.com/shardform/shardform/store"
)

// fields lists each provider's secret fields, the first one giving the hint
// (for aws the access key id, not the secret key).
var fields = map[string][]string{
	"hetzner":    {"token"},
	"aws":        {"access_key_id", "secret_access_key"},
	"cloudflare": {"api_token"},
}

// Providers lists the providers a credential can be for.
func Providers() []string { return []string{"aws", "cloudflare", "hetzner"} }

// Secret is a credential's secret fields (token, access keys).
type Secret map[string]string

// Verifier checks a secret against the provider's API; nil means it works.
type Verifier interface {
	Verify(ctx context.Context, secret map[string]string) error
}

// Credential is a credential as the API shows it: never the secret.
type Credential struct {
	ID          uuid.UUID  `json:"id"`
	Name        string     `json:"name"`
	Provider    string     `json:"provider"`
	Hint        string     `json:"hint"`
	IsDefault   bool       `json:"is_default"`
	VerifiedAt  *time.Time `json:"verified_at"`
	VerifyError string     `json:"verify_error"`
	CreatedAt   time.Time  `json:"created_at"`
	UpdatedAt   time.Time  `json:"updated_at"`
}

func view(c store.Credential) Credential {
	return Credential{ID: c.ID, Name: c.Name, Provider: c.Provider, Hint: c.Hint, IsDefault: c.IsDefault,
		VerifiedAt: c.VerifiedAt, VerifyError: c.VerifyError, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt}
}

// Service manages credentials.
type Service struct {
	st        *store.Store
	q         *store.Queries
	sealer    *seal.Sealer
	verifiers map[string]Verifier
}

// New builds the service; verifiers maps a provider to its checker.
func New(st *store.Store, sealer *seal.Sealer, verifiers map[string]Verifier) *Service {
	return &Service{st: st, q: st.Q, sealer: sealer, verifiers: verifiers}
}

// Input is the body of create and update.
type Input struct {
	Name     string `json:"name"`
	Provider string `json:"provider"`
	Secret   Secret `json:"secret"`
}

var nameRE = regexp.MustCompile(`^[\p{L}\p{N} ._-]+$`)

func validateName(name string) (string, error) {
	name = strings.TrimSpace(name)
	if name == "" {
		return "", domain.Invalid("name", "is required")
	}
	if utf8.RuneCountInString(name) > domain.MaxNameLength || !nameRE.MatchString(name) {
		return "", domain.Invalid("name", "must be 1-100 letters, digits, spaces and . _ -")
	}
	return name, nil
}

func validateSecret(provider string, s Secret) error {
	want := fields[provider]
	for k := range s {
		if !slices.Contains(want, k) {
			return domain.Invalid("secret."+k, "is not a field of a %s credential (fields: %s)", provider, strings.Join(want, ", "))
		}
	}
	for _, f := range want {
		v := strings.TrimSpace(s[f])
		if v == "" {
			return domain.Invalid("secret."+f, "is required")
		}
		if len(v) > domain.MaxSecretLength || strings.ContainsAny(v, "\r\n") {
			return domain.Invalid("secret."+f, "must be one line of at most %d characters", domain.MaxSecretLength)
		}
		if err := domain.CheckText("secret."+f, v, domain.MaxSecretLength); err != nil {
			return err
		}
		s[f] = v
	}
	return nil
}

func hint(provider string, s Secret) string {
	v := s[fields[provider][0]]
	if len(v) <= 8 {
		return "…"
	}
	return "…" + v[len(v)-4:]
}

func sealContext(id uuid.UUID) string { return "credential:" + id.String() }

func need(p *domain.Principal, perm domain.Permission) error {
	if !p.HasOrg {
		return domain.Forbidden("you belong to no organization")
	}
	if !p.Can(perm) {
		return domain.Forbidden("missing permission %s", perm)
	}
	return nil
}

// Create stores a credential. The first one of a provider becomes its default.
func (s *Service) Create(ctx context.Context, p *domain.Principal, in Input) (Credential, error) {
	if err := need(p, domain.PermCredentialsWrite); err != nil {
		return Credential{}, err
	}
	name, err := validateName(in.Name)
	if err != nil {
		return Credential{}, err
	}
	if _, ok := fields[in.Provider]; !ok {
		return Credential{}, domain.Invalid("provider", "must be one of: %s", strings.Join(Providers(), ", "))
	}
	if in.Secret == nil {
		return Credential{}, domain.Invalid("secret", "is required")
	}
	if err := validateSecret(in.Provider, in.Secret); err != nil {
		return Credential{}, err
	}
	id := uuid.New()
	sealed, err := s.seal(id, in.Secret)
	if err != nil {
		return Credential{}, err
	}
	row, err := s.q.CreateCredential(ctx, s.st.Pool, store.CreateCredentialParams{
		ID: id, OrganizationID: p.OrgID, Name: name, Provider: in.Provider, Secret: sealed, Hint: hint(in.Provider, in.Secret),
		CreatedBy: uuid.NullUUID{UUID: p.UserID, Valid: true},
	})
	if store.IsUniqueViolation(err) {
		return Credential{}, domain.Conflict("a credential named %q already exists", name)
	}
	if err != nil {
		return Credential{}, fmt.Errorf("create credential: %w", err)
	}
	return view(row), nil
}

func (s *Service) seal(id uuid.UUID, secret Secret) ([]byte, error) {
	b, err := json.Marshal(secret)
	if err != nil {
		return nil, fmt.Errorf("seal credential: %w", err)
	}
	return s.sealer.Seal(b, sealContext(id))
}

func (s *Service) get(ctx context.Context, db store.DBTX, p *domain.Principal, id uuid.UUID) (store.Credential, error) {
	row, err := s.q.GetCredential(ctx, db, store.GetCredentialParams{OrganizationID: p.OrgID, ID: id})
	if store.IsNoRows(err) {
		return row, domain.NotFound("credential")
	}
	if err != nil {
		return row, fmt.Errorf("get credential %s: %w", id, err)
	}
	return row, nil
}

// Get returns one credential (credentials:read).
func (s *Service) Get(ctx context.Context, p *domain.Principal, id uuid.UUID) (Credential, error) {
	if err := need(p, domain.PermCredentialsRead); err != nil {
		return Credential{}, err
	}
	row, err := s.get(ctx, s.st.Pool, p, id)
	if err != nil {
		return Credential{}, err
	}
	return view(row), nil
}

// List lists the organization's credentials, optionally of one provider.
func (s *Service) List(ctx context.Context, p *domain.Principal, provider string, page domain.Page) ([]Credential, int64, error) {
	if err := need(p, domain.PermCredentialsRead); err != nil {
		return nil, 0, err
	}
	var prov *string
	if provider != "" {
		prov = &provider
	}
	total, err := s.q.CountCredentials(ctx, s.st.Pool, store.CountCredentialsParams{OrganizationID: p.OrgID, Provider: prov})
	if err != nil {
		return nil, 0, fmt.Errorf("count credentials: %w", err)
	}
	rows, err := s.q.ListCredentials(ctx, s.st.Pool, store.ListCredentialsParams{OrganizationID: p.OrgID, Provider: prov, Lim: page.Limit, Off: page.Offset()})
	if err != nil {
		return nil, 0, fmt.Errorf("list credentials: %w", err)
	}
	out := make([]Credential, len(rows))
	for i, r := range rows {
		out[i] = view(r)
	}
	return out, total, nil
}

// Update renames a credential and/or replaces its secret (the provider
// cannot change). A new secret clears the verification result.
func (s *Service) Update(ctx context.Context, p *domain.Principal, id uuid.UUID, in Input) (Credential, error) {
	if err := need(p, domain.PermCredentialsWrite); err != nil {
		return Credential{}, err
	}
	var out Credential
	err := s.st.InTx(ctx, func(tx pgx.Tx) error {
		row, err := s.get(ctx, tx, p, id)
		if err != nil {
			return err
		}
		if in.Provider != "" && in.Provider != row.Provider {
			return domain.Invalid("provider", "cannot change (create a new credential)")
		}
		name := row.Name
		if in.Name != "" {
			if name, err = validateName(in.Name); err != nil {
				return err
			}
		}
		sealed, h := row.Secret, row.Hint
		if in.Secret != nil {
			if err := validateSecret(row.Provider, in.Secret); err != nil {
				return err
			}
			if sealed, err = s.seal(id, in.Secret); err != nil {
				return err
			}
			h = hint(row.Provider, in.Secret)
		}
		updated, err := s.q.UpdateCredential(ctx, tx, store.UpdateCredentialParams{OrganizationID: p.OrgID, ID: id, Name: name, Secret: sealed, Hint: h, NewSecret: in.Secret != nil})
		if store.IsUniqueViolation(err) {
			return domain.Conflict("a credential named %q already exists", name)
		}
		if err != nil {
			return fmt.Errorf("update credential %s: %w", id, err)
		}
		out = view(updated)
		return nil
	})
	return out, err
}

// Delete removes a credential. One that a live provision request still
// needs (to plan, apply or destroy) is refused with 409 naming the requests.
func (s *Service) Delete(ctx context.Context, p *domain.Principal, id uuid.UUID) error {
	if err := need(p, domain.PermCredentialsWrite); err != nil {
		return err
	}
	return s.st.InTx(ctx, func(tx pgx.Tx) error {
		// The row lock conflicts with the key-share lock a concurrent
		// provision request's foreign key takes: it waits, or fails after.
		if _, err := s.q.LockCredential(ctx, tx, store.LockCredentialParams{OrganizationID: p.OrgID, ID: id}); store.IsNoRows(err) {
			return domain.NotFound("credential")
		} else if err != nil {
			return fmt.Errorf("delete credential %s: %w", id, err)
		}
		users, err := s.q.LiveProvisionsUsingCredential(ctx, tx, uuid.NullUUID{UUID: id, Valid: true})
		if err != nil {
			return fmt.Errorf("delete credential %s: %w", id, err)
		}
		if len(users) > 0 {
			names := make([]string, len(users))
			for i, u := range users {
				names[i] = fmt.Sprintf("%s (%s)", u.Name, u.ID)
			}
			return domain.Conflict("credential is used by live provision requests: %s; destroy them first", strings.Join(names, ", "))
		}
		dns, err := s.q.CountDNSUsesOfCredential(ctx, tx, store.CountDNSUsesOfCredentialParams{OrganizationID: p.OrgID, CredentialID: uuid.NullUUID{UUID: id, Valid: true}})
		if err != nil {
			return fmt.Errorf("delete credential %s: %w", id, err)
		}
		if dns.Records > 0 {
			return domain.Conflict("credential is used by %d DNS records shardform manages: delete them first (DELETE /v1/dns/records/{id}), or shardform could no longer change or remove them", dns.Records)
		}
		if dns.AutoDns {
			return domain.Conflict("credential is used by auto-DNS: turn it off or choose another credential first (PUT /v1/dns/auto-config)")
		}
		if _, err := s.q.DeleteCredential(ctx, tx, store.DeleteCredentialParams{OrganizationID: p.OrgID, ID: id}); err != nil {
			return fmt.Errorf("delete credential %s: %w", id, err)
		}
		return nil
	})
}

// SetDefault makes a credential its provider's default.
func (s *Service) SetDefault(ctx context.Context, p *domain.Principal, id uuid.UUID) (Credential, error) {
	if err := need(p, domain.PermCredentialsWrite); err != nil {
		return Credential{}, err
	}
	var out Credential
	err := s.st.InTx(ctx, func(tx pgx.Tx) error {
		row, err := s.get(ctx, tx, p, id)
		if err != nil {
			return err
		}
		if err := s.q.ClearDefaultCredential(ctx, tx, store.ClearDefaultCredentialParams{OrganizationID: p.OrgID, Provider: row.Provider}); err != nil {
			return fmt.Errorf("set default credential: %w", err)
		}
		updated, err := s.q.SetDefaultCredential(ctx, tx, store.SetDefaultCredentialParams{OrganizationID: p.OrgID, ID: id})
		if err != nil {
			return fmt.Errorf("set default credential: %w", err)
		}
		out = view(updated)
		return nil
	})
	return out, err
}

// VerifyResult is what Verify found.
type VerifyResult struct {
	OK         bool       `json:"ok"`
	Error      string     `json:"error,omitempty"`
	Credential Credential `json:"credential"`
}

// Verify asks the provider's API whether the credential works and records
// the answer. A provider's refusal is a result (ok false), not an error.
func (s *Service) Verify(ctx context.Context, p *domain.Principal, id uuid.UUID) (VerifyResult, error) {
	if err := need(p, domain.PermCredentialsWrite); err != nil {
		return VerifyResult{}, err
	}
	row, err := s.get(ctx, s.st.Pool, p, id)
	if err != nil {
		return VerifyResult{}, err
	}
	v, ok := s.verifiers[row.Provider]
	if !ok {
		return VerifyResult{}, &domain.PublicError{Kind: domain.ErrUnprocessable, Message: "verifying " + row.Provider + " credentials is not possible in this process (aws keys are checked with Terraform: verify through a `shardform serve` process)"}
	}
	secret, err := s.Secret(ctx, p.OrgID, id)
	if err != nil {
		return VerifyResult{}, err
	}
	verr := v.Verify(ctx, secret)
	msg := ""
	if verr != nil {
		msg = verr.Error()
	}
	updated, err := s.q.RecordCredentialVerification(ctx, s.st.Pool, store.RecordCredentialVerificationParams{OrganizationID: p.OrgID, ID: id, VerifyError: msg})
	if err != nil {
		return VerifyResult{}, fmt.Errorf("record verification of %s: %w", id, err)
	}
	return VerifyResult{OK: verr == nil, Error: msg, Credential: view(updated)}, nil
}

// Secret opens a credential's secret for a worker about to use it.
func (s *Service) Secret(ctx context.Context, orgID, id uuid.UUID) (Secret, error) {
	row, err := s.q.GetCredential(ctx, s.st.Pool, store.GetCredentialParams{OrganizationID: orgID, ID: id})
	if store.IsNoRows(err) {
		return nil, domain.NotFound("credential")
	}
	if err != nil {
		return nil, fmt.Errorf("load credential %s: %w", id, err)
	}
	return Open(s.sealer, row)
}

// Open unseals a credential row's secret fields.
func Open(sealer *seal.Sealer, row store.Credential) (Secret, error) {
	plain, err := sealer.Open(row.Secret, sealContext(row.ID))
	if err != nil {
		return nil, fmt.Errorf("open credential %s: %w", row.ID, err)
	}
	var secret Secret
	if err := json.Unmarshal(plain, &secret); err != nil {
		return nil, fmt.Errorf("open credential %s: %w", row.ID, err)
	}
	return secret, nil
}
