package identity

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/shardform/shardform/domain"
	"github.com/shardform/shardform/store"
)

// Credentials is an email and password pair.
type Credentials struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

// User is a user as the API shows it.
type User struct {
	ID         uuid.UUID `json:"id"`
	Email      string    `json:"email"`
	IsAdmin    bool      `json:"is_admin"`
	MFAEnabled bool      `json:"mfa_enabled"`
	CreatedAt  time.Time `json:"created_at"`
}

func userView(u store.User) User {
	return User{ID: u.ID, Email: u.Email, IsAdmin: u.IsAdmin, MFAEnabled: u.MfaEnabled, CreatedAt: u.CreatedAt}
}

// NewAccount is what creating an account returns: the user and their organization.
type NewAccount struct {
	User         User         `json:"user"`
	Organization Organization `json:"organization"`
}

// LoginResult is a session, or (for a user with MFA) a challenge to answer
// at /v1/auth/mfa/challenge.
type LoginResult struct {
	Session        *Session
	MFARequired    bool
	ChallengeToken string
}

// NeedsBootstrap reports whether no user exists yet.
func (s *Service) NeedsBootstrap(ctx context.Context) (bool, error) {
	n, err := s.q.CountUsers(ctx, s.st.Pool)
	if err != nil {
		return false, fmt.Errorf("count users: %w", err)
	}
	return n == 0, nil
}

// Bootstrap creates the first user, a platform administrator, with their
// organization. Once any user exists it fails with ErrConflict.
func (s *Service) Bootstrap(ctx context.Context, c Credentials) (NewAccount, error) {
	return s.newAccount(ctx, c, true, func(users int64) error {
		if users > 0 {
			return domain.Conflict("already bootstrapped: log in instead")
		}
		return nil
	})
}

// Register creates a user and their own organization, if registration is open.
func (s *Service) Register(ctx context.Context, c Credentials) (NewAccount, error) {
	if !s.opts.AllowRegistration {
		return NewAccount{}, domain.Forbidden("registration is closed on this server: ask an administrator for an account")
	}
	return s.newAccount(ctx, c, false, func(users int64) error {
		if users == 0 {
			return domain.Conflict("server not bootstrapped yet: POST /v1/auth/bootstrap creates the first administrator")
		}
		return nil
	})
}

// CreateUser is the platform administrator's way to add a user (with their
// own organization).
func (s *Service) CreateUser(ctx context.Context, p *domain.Principal, c Credentials, isAdmin bool) (NewAccount, error) {
	if err := requirePlatformAdmin(p); err != nil {
		return NewAccount{}, err
	}
	return s.newAccount(ctx, c, isAdmin, func(int64) error { return nil })
}

// newAccount validates the credentials, hashes the password, and creates
// the user with their organization in one transaction, serialized with
// every other account creation so check sees a stable user count.
func (s *Service) newAccount(ctx context.Context, c Credentials, isAdmin bool, check func(users int64) error) (NewAccount, error) {
	email, err := validateCredentials(c)
	if err != nil {
		return NewAccount{}, err
	}
	hash, err := hashPassword(c.Password, s.opts.Password)
	if err != nil {
		return NewAccount{}, err
	}
	var acct NewAccount
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		if err := s.q.LockAccountCreation(ctx, tx); err != nil {
			return fmt.Errorf("create account: lock: %w", err)
		}
		n, err := s.q.CountUsers(ctx, tx)
		if err != nil {
			return fmt.Errorf("create account: count users: %w", err)
		}
		if err := check(n); err != nil {
			return err
		}
		acct, err = s.createAccount(ctx, tx, email, hash, isAdmin)
		return err
	})
	return acct, err
}

func (s *Service) createAccount(ctx context.Context, tx pgx.Tx, email, hash string, isAdmin bool) (NewAccount, error) {
	u, err := s.q.CreateUser(ctx, tx, store.CreateUserParams{Email: email, PasswordHash: hash, IsAdmin: isAdmin})
	if store.IsUniqueViolation(err) {
		return NewAccount{}, domain.Conflict("a user with email %s already exists", email)
	}
	if err != nil {
		return NewAccount{}, fmt.Errorf("create user: %w", err)
	}
	org, err := s.createOrganization(ctx, tx, u.ID, email)
	if err != nil {
		return NewAccount{}, err
	}
	return NewAccount{User: userView(u), Organization: org}, nil
}

func validateCredentials(c Credentials) (string, error) {
	email, err := validateEmail(c.Email)
	if err != nil {
		return "", err
	}
	if err := validatePassword("password", c.Password); err != nil {
		return "", err
	}
	return email, nil
}

func validateEmail(raw string) (string, error) {
	return domain.Email("email", raw)
}

// Login checks an email and password. It is rate limited per client address
// (every attempt counts) and per account (failures count; after
// LoginFailures the account is locked for the rest of LockoutWindow).
func (s *Service) Login(ctx context.Context, c Credentials, clientIP string) (LoginResult, error) {
	email := normalizeEmail(c.Email)
	if email == "" {
		return LoginResult{}, domain.Invalid("email", "is required")
	}
	// An address no account can have is bad input, never a lookup (nor a
	// rate-limit key) of arbitrary size.
	if err := domain.CheckText("email", email, domain.MaxEmailLength); err != nil {
		return LoginResult{}, err
	}
	if c.Password == "" {
		return LoginResult{}, domain.Invalid("password", "is required")
	}
	if len(c.Password) > maxPasswordLength {
		return LoginResult{}, domain.Unauthenticated("invalid email or password")
	}
	ipRes, err := s.limiter.Hit(ctx, "login:ip:"+clientIP, s.opts.LoginAttemptsPerIP, time.Minute)
	if err != nil {
		return LoginResult{}, err
	}
	if !ipRes.Allowed {
		return LoginResult{}, &domain.RateLimitedError{Reason: "too many login attempts from this address", RetryAfter: ipRes.RetryAfter(s.now())}
	}
	// Count the attempt and decide in one statement: the attempt is
	// counted as a failure before the password is checked and forgiven
	// (the count reset) when it turns out right, so concurrent guesses
	// cannot all pass a check made before any of them is counted.
	failKey := "login:fail:" + email
	failRes, err := s.limiter.Hit(ctx, failKey, s.opts.LoginFailures, s.opts.LockoutWindow)
	if err != nil {
		return LoginResult{}, err
	}
	if !failRes.Allowed {
		return LoginResult{}, &domain.RateLimitedError{Reason: "account locked after repeated failed logins", RetryAfter: failRes.RetryAfter(s.now())}
	}

	u, err := s.q.GetUserByEmail(ctx, s.st.Pool, email)
	found := err == nil
	if err != nil && !store.IsNoRows(err) {
		return LoginResult{}, fmt.Errorf("login: load user: %w", err)
	}
	hash := s.dummyHash // an unknown email costs as much time as a wrong password
	if found {
		hash = u.PasswordHash
	}
	ok, err := verifyPassword(c.Password, hash)
	if err != nil && found {
		return LoginResult{}, fmt.Errorf("login: verify password of %s: %w", u.ID, err)
	}
	if !found || !ok {
		return LoginResult{}, domain.Unauthenticated("invalid email or password") // the attempt stays counted
	}
	if err := s.limiter.Reset(ctx, failKey); err != nil {
		return LoginResult{}, err
	}
	if u.MfaEnabled {
		token, err := s.newMFAChallenge(ctx, u.ID)
		if err != nil {
			return LoginResult{}, err
		}
		return LoginResult{MFARequired: true, ChallengeToken: token}, nil
	}
	sess, err := s.issueSession(ctx, s.st.Pool, u, uuid.Nil)
	if err != nil {
		return LoginResult{}, err
	}
	return LoginResult{Session: &sess}, nil
}

// Me is the caller's own account with their organizations.
type Me struct {
	User
	Organizations []Organization `json:"organizations"`
	// Credential is how the caller authenticated: "access_token" (a login
	// session) or "api_token", whose id is then APITokenID. A token never
	// carries platform-admin rights, so is_admin is false through one.
	Credential string `json:"credential"`
	APITokenID string `json:"api_token_id,omitempty"`
}

// GetMe returns the caller's account.
func (s *Service) GetMe(ctx context.Context, p *domain.Principal) (Me, error) {
	u, err := s.q.GetUserByID(ctx, s.st.Pool, p.UserID)
	if err != nil {
		return Me{}, fmt.Errorf("get user %s: %w", p.UserID, err)
	}
	orgs, err := s.q.ListOrganizationsForUser(ctx, s.st.Pool, store.ListOrganizationsForUserParams{UserID: p.UserID, Lim: 1000, Off: 0})
	if err != nil {
		return Me{}, fmt.Errorf("list organizations of %s: %w", p.UserID, err)
	}
	me := Me{User: userView(u), Organizations: make([]Organization, 0, len(orgs)), Credential: "access_token"}
	if p.ViaAPIToken() {
		me.IsAdmin = false
		me.Credential, me.APITokenID = "api_token", p.APITokenID.String()
	}
	for _, o := range orgs {
		if p.ViaAPIToken() && o.ID != p.OrgID {
			continue // a token sees only its own organization
		}
		me.Organizations = append(me.Organizations, orgView(o.ID, o.Name, o.Role, o.CreatedAt))
	}
	return me, nil
}

// PasswordChange is the body of POST /v1/users/me/password.
type PasswordChange struct {
	CurrentPassword string `json:"current_password"`
	NewPassword     string `json:"new_password"`
}

// ChangePassword checks the current password, stores the new one, revokes
// every refresh token and every access token of the user, and returns a new
// session for the caller.
func (s *Service) ChangePassword(ctx context.Context, p *domain.Principal, pc PasswordChange) (Session, error) {
	if err := requireSession(p); err != nil {
		return Session{}, err
	}
	if pc.CurrentPassword == "" {
		return Session{}, domain.Invalid("current_password", "is required")
	}
	if err := validatePassword("new_password", pc.NewPassword); err != nil {
		return Session{}, err
	}
	u, err := s.q.GetUserByID(ctx, s.st.Pool, p.UserID)
	if err != nil {
		return Session{}, fmt.Errorf("change password: load user: %w", err)
	}
	ok, err := verifyPassword(pc.CurrentPassword, u.PasswordHash)
	if err != nil {
		return Session{}, fmt.Errorf("change password: %w", err)
	}
	if !ok {
		return Session{}, domain.Forbidden("current_password is wrong")
	}
	hash, err := hashPassword(pc.NewPassword, s.opts.Password)
	if err != nil {
		return Session{}, err
	}
	var sess Session
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		u, err := s.q.UpdateUserPassword(ctx, tx, store.UpdateUserPasswordParams{ID: p.UserID, PasswordHash: hash})
		if err != nil {
			return fmt.Errorf("change password: %w", err)
		}
		if err := s.q.RevokeUserRefreshTokens(ctx, tx, p.UserID); err != nil {
			return fmt.Errorf("change password: revoke sessions: %w", err)
		}
		sess, err = s.issueSession(ctx, tx, u, uuid.Nil)
		return err
	})
	return sess, err
}

// ListUsers lists every user (platform administrators only).
func (s *Service) ListUsers(ctx context.Context, p *domain.Principal, page domain.Page) ([]User, int64, error) {
	if err := requirePlatformAdmin(p); err != nil {
		return nil, 0, err
	}
	total, err := s.q.CountUsers(ctx, s.st.Pool)
	if err != nil {
		return nil, 0, fmt.Errorf("count users: %w", err)
	}
	rows, err := s.q.ListUsers(ctx, s.st.Pool, store.ListUsersParams{Lim: page.Limit, Off: page.Offset()})
	if err != nil {
		return nil, 0, fmt.Errorf("list users: %w", err)
	}
	out := make([]User, len(rows))
	for i, u := range rows {
		out[i] = userView(u)
	}
	return out, total, nil
}

// GetUser returns one user (platform administrators only).
func (s *Service) GetUser(ctx context.Context, p *domain.Principal, id uuid.UUID) (User, error) {
	if err := requirePlatformAdmin(p); err != nil {
		return User{}, err
	}
	u, err := s.q.GetUserByID(ctx, s.st.Pool, id)
	if store.IsNoRows(err) {
		return User{}, domain.NotFound("user")
	}
	if err != nil {
		return User{}, fmt.Errorf("get user %s: %w", id, err)
	}
	return userView(u), nil
}

// DeleteUser removes a user (platform administrators only). Organizations in
// which they were the only member go with them; a user who is the last owner
// of an organization with other members cannot be deleted.
func (s *Service) DeleteUser(ctx context.Context, p *domain.Principal, id uuid.UUID) error {
	if err := requirePlatformAdmin(p); err != nil {
		return err
	}
	if id == p.UserID {
		return domain.Conflict("you cannot delete your own account")
	}
	return s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := s.q.GetUserByID(ctx, tx, id); err != nil {
			if store.IsNoRows(err) {
				return domain.NotFound("user")
			}
			return fmt.Errorf("delete user %s: %w", id, err)
		}
		orgs, err := s.q.ListSoleOwnedOrganizations(ctx, tx, id)
		if err != nil {
			return fmt.Errorf("delete user %s: %w", id, err)
		}
		for _, o := range orgs {
			if o.Members > 1 {
				return domain.Conflict("user is the last owner of organization %s, which has other members: transfer ownership first", o.ID)
			}
			if _, err := s.q.DeleteOrganization(ctx, tx, o.ID); err != nil {
				return fmt.Errorf("delete user %s: delete organization %s: %w", id, o.ID, err)
			}
		}
		if _, err := s.q.DeleteUser(ctx, tx, id); err != nil {
			return fmt.Errorf("delete user %s: %w", id, err)
		}
		return nil
	})
}

func requirePlatformAdmin(p *domain.Principal) error {
	if !p.IsAdmin {
		return domain.Forbidden("platform administrators only")
	}
	return nil
}

// requireSession refuses API tokens for account management: a token can
// never mint a way to write more than it was given.
func requireSession(p *domain.Principal) error {
	if p.ViaAPIToken() {
		return domain.Forbidden("API tokens cannot manage organizations, members, API tokens, passwords or MFA: use a login session")
	}
	return nil
}
