// Package identity is shardform's accounts domain: users and passwords,
// login sessions (JWT access tokens and rotating refresh tokens), TOTP MFA,
// API tokens, organizations, members, invites and permissions. Its errors are
// the domain package's; the api package maps them to HTTP statuses.
package identity

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/shardform/shardform/ratelimit"
	"github.com/shardform/shardform/seal"
	"github.com/shardform/shardform/store"
)

// Options tunes the service. Zero values take the defaults.
type Options struct {
	// AllowRegistration lets anyone create an account with POST /v1/auth/register.
	AllowRegistration bool
	AccessTTL         time.Duration // default 15 minutes
	RefreshTTL        time.Duration // default 30 days
	// Login protection: attempts per client address per minute, and failed
	// attempts per account before it is locked for LockoutWindow.
	LoginAttemptsPerIP int           // default 20
	LoginFailures      int           // default 5
	LockoutWindow      time.Duration // default 15 minutes
	MFAAttempts        int           // per user per minute, default 5
	Password           PasswordParams
	Issuer             string // JWT issuer and TOTP issuer, default "shardform"
	// RefreshReuseInterval is how long after its use a rotated refresh
	// token may be used again without that counting as theft: requests of
	// one browser that found the access token expired at the same moment
	// (the dashboard's page and its live parts) each refresh, and each gets
	// a session of the same login. A reuse after it revokes the whole login.
	// Default 10 s; negative: none (every reuse revokes).
	RefreshReuseInterval time.Duration
}

func (o *Options) defaults() {
	if o.AccessTTL == 0 {
		o.AccessTTL = 15 * time.Minute
	}
	if o.RefreshTTL == 0 {
		o.RefreshTTL = 30 * 24 * time.Hour
	}
	if o.RefreshReuseInterval == 0 {
		o.RefreshReuseInterval = 10 * time.Second
	}
	if o.LoginAttemptsPerIP == 0 {
		o.LoginAttemptsPerIP = 20
	}
	if o.LoginFailures == 0 {
		o.LoginFailures = 5
	}
	if o.LockoutWindow == 0 {
		o.LockoutWindow = 15 * time.Minute
	}
	if o.MFAAttempts == 0 {
		o.MFAAttempts = 5
	}
	if o.Password == (PasswordParams{}) {
		o.Password = DefaultPasswordParams()
	}
	if o.Issuer == "" {
		o.Issuer = "shardform"
	}
}

// Service implements the accounts domain on top of the store.
type Service struct {
	st      *store.Store
	q       *store.Queries
	sealer  *seal.Sealer
	limiter *ratelimit.Limiter
	jwtKey  []byte
	// dummyHash is verified when the email is unknown, so a login for a
	// missing account takes as long as one with a wrong password.
	dummyHash string
	now       func() time.Time
	opts      Options
}

// New builds the service. masterKey derives the JWT signing key; sealer
// encrypts TOTP secrets; now is the clock.
func New(st *store.Store, masterKey []byte, sealer *seal.Sealer, limiter *ratelimit.Limiter, now func() time.Time, opts Options) (*Service, error) {
	opts.defaults()
	jwtKey, err := seal.DeriveKey(masterKey, "shardform jwt v1")
	if err != nil {
		return nil, err
	}
	dummy, err := hashPassword("shardform-dummy-password", opts.Password)
	if err != nil {
		return nil, err
	}
	return &Service{st: st, q: st.Q, sealer: sealer, limiter: limiter, jwtKey: jwtKey, dummyHash: dummy, now: now, opts: opts}, nil
}

// Options returns the effective options.
func (s *Service) Options() Options { return s.opts }

func (s *Service) inTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return s.st.InTx(ctx, fn)
}

// newSecret returns prefix followed by 32 random bytes, base64url-encoded,
// and the SHA-256 hash that is stored in its place.
func newSecret(prefix string) (secret string, hash []byte, err error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", nil, fmt.Errorf("generate secret: %w", err)
	}
	secret = prefix + base64.RawURLEncoding.EncodeToString(b)
	return secret, hashSecret(secret), nil
}

// hashSecret hashes a high-entropy secret for storage and lookup. Such
// secrets need no salt or slow hash: they cannot be guessed.
func hashSecret(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

func normalizeEmail(email string) string { return strings.ToLower(strings.TrimSpace(email)) }
