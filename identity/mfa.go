package identity

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/shardform/shardform/domain"
	"github.com/shardform/shardform/store"
)

// MFAChallengeTTL is how long a login's MFA challenge can be answered.
const MFAChallengeTTL = 5 * time.Minute

const totpPeriod = 30

// MFAStatus tells whether MFA is on for the caller.
type MFAStatus struct {
	Enabled bool `json:"enabled"`
	Pending bool `json:"pending"` // enrolled but not yet verified
}

// MFAEnrollment is the secret a user adds to their authenticator app.
type MFAEnrollment struct {
	Secret     string `json:"secret"`
	OTPAuthURI string `json:"otpauth_uri"` // the reference's name
}

func mfaContext(userID uuid.UUID) string { return "mfa:" + userID.String() }

// MFAStatus reports the caller's MFA state.
func (s *Service) MFAStatus(ctx context.Context, p *domain.Principal) (MFAStatus, error) {
	if err := requireSession(p); err != nil {
		return MFAStatus{}, err
	}
	u, err := s.q.GetUserByID(ctx, s.st.Pool, p.UserID)
	if err != nil {
		return MFAStatus{}, fmt.Errorf("mfa status: %w", err)
	}
	return MFAStatus{Enabled: u.MfaEnabled, Pending: !u.MfaEnabled && u.MfaSecret != nil}, nil
}

// EnrollMFA generates a TOTP secret (sealed at rest). MFA is on only once a
// code from it is verified. Enrolling again before that replaces the secret.
func (s *Service) EnrollMFA(ctx context.Context, p *domain.Principal) (MFAEnrollment, error) {
	if err := requireSession(p); err != nil {
		return MFAEnrollment{}, err
	}
	u, err := s.q.GetUserByID(ctx, s.st.Pool, p.UserID)
	if err != nil {
		return MFAEnrollment{}, fmt.Errorf("mfa enroll: %w", err)
	}
	if u.MfaEnabled {
		return MFAEnrollment{}, domain.Conflict("MFA is already enabled: disable it first")
	}
	key, err := totp.Generate(totp.GenerateOpts{Issuer: s.opts.Issuer, AccountName: u.Email, Period: totpPeriod, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		return MFAEnrollment{}, fmt.Errorf("mfa enroll: generate: %w", err)
	}
	sealed, err := s.sealer.Seal([]byte(key.Secret()), mfaContext(u.ID))
	if err != nil {
		return MFAEnrollment{}, fmt.Errorf("mfa enroll: %w", err)
	}
	if err := s.q.SetUserMFASecret(ctx, s.st.Pool, store.SetUserMFASecretParams{ID: u.ID, MfaSecret: sealed}); err != nil {
		return MFAEnrollment{}, fmt.Errorf("mfa enroll: store: %w", err)
	}
	return MFAEnrollment{Secret: key.Secret(), OTPAuthURI: key.URL()}, nil
}

// VerifyMFA turns MFA on with a first valid code.
func (s *Service) VerifyMFA(ctx context.Context, p *domain.Principal, code string) (MFAStatus, error) {
	if err := requireSession(p); err != nil {
		return MFAStatus{}, err
	}
	u, err := s.q.GetUserByID(ctx, s.st.Pool, p.UserID)
	if err != nil {
		return MFAStatus{}, fmt.Errorf("mfa verify: %w", err)
	}
	if u.MfaEnabled {
		return MFAStatus{}, domain.Conflict("MFA is already enabled")
	}
	if u.MfaSecret == nil {
		return MFAStatus{}, domain.Conflict("no MFA enrollment: POST /v1/auth/mfa/enroll first")
	}
	if err := s.mfaAttempt(ctx, p.UserID); err != nil {
		return MFAStatus{}, err
	}
	step, err := s.checkCode(u, code)
	if err != nil {
		return MFAStatus{}, err
	}
	n, err := s.q.EnableUserMFA(ctx, s.st.Pool, store.EnableUserMFAParams{ID: u.ID, Step: step})
	if err != nil {
		return MFAStatus{}, fmt.Errorf("mfa verify: %w", err)
	}
	if n == 0 {
		return MFAStatus{}, domain.Conflict("MFA enrollment changed meanwhile: try again")
	}
	return MFAStatus{Enabled: true}, nil
}

// DisableMFA turns MFA off; it takes a current code.
func (s *Service) DisableMFA(ctx context.Context, p *domain.Principal, code string) (MFAStatus, error) {
	if err := requireSession(p); err != nil {
		return MFAStatus{}, err
	}
	u, err := s.q.GetUserByID(ctx, s.st.Pool, p.UserID)
	if err != nil {
		return MFAStatus{}, fmt.Errorf("mfa disable: %w", err)
	}
	if !u.MfaEnabled {
		return MFAStatus{}, domain.Conflict("MFA is not enabled")
	}
	if err := s.mfaAttempt(ctx, p.UserID); err != nil {
		return MFAStatus{}, err
	}
	if _, err := s.useCode(ctx, s.st.Pool, u, code); err != nil {
		return MFAStatus{}, err
	}
	if err := s.q.DisableUserMFA(ctx, s.st.Pool, u.ID); err != nil {
		return MFAStatus{}, fmt.Errorf("mfa disable: %w", err)
	}
	return MFAStatus{Enabled: false}, nil
}

// newMFAChallenge records a one-time challenge for a login that passed the password check.
func (s *Service) newMFAChallenge(ctx context.Context, userID uuid.UUID) (string, error) {
	token, hash, err := newSecret("sfm_")
	if err != nil {
		return "", err
	}
	if _, err := s.q.CreateMFAChallenge(ctx, s.st.Pool, store.CreateMFAChallengeParams{UserID: userID, TokenHash: hash, ExpiresAt: s.now().Add(MFAChallengeTTL)}); err != nil {
		return "", fmt.Errorf("create mfa challenge: %w", err)
	}
	return token, nil
}

// MFAChallengeAnswer is the body of POST /v1/auth/mfa/challenge.
type MFAChallengeAnswer struct {
	ChallengeToken string `json:"challenge_token"`
	Code           string `json:"code"`
}

// CompleteMFAChallenge finishes a login with a TOTP code. A wrong code keeps
// the challenge open (within the attempt limit); a right one uses it up.
func (s *Service) CompleteMFAChallenge(ctx context.Context, a MFAChallengeAnswer) (Session, error) {
	if a.ChallengeToken == "" {
		return Session{}, domain.Invalid("challenge_token", "is required")
	}
	ch, err := s.q.GetMFAChallenge(ctx, s.st.Pool, hashSecret(a.ChallengeToken))
	if store.IsNoRows(err) {
		return Session{}, domain.Unauthenticated("invalid or expired MFA challenge: log in again")
	}
	if err != nil {
		return Session{}, fmt.Errorf("mfa challenge: %w", err)
	}
	if err := s.mfaAttempt(ctx, ch.UserID); err != nil {
		return Session{}, err
	}
	var sess Session
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		u, err := s.q.GetUserByID(ctx, tx, ch.UserID)
		if err != nil {
			return fmt.Errorf("mfa challenge: load user: %w", err)
		}
		if !u.MfaEnabled {
			return domain.Unauthenticated("MFA is no longer enabled: log in again")
		}
		if _, err := s.useCode(ctx, tx, u, a.Code); err != nil {
			if errors.Is(err, errWrongCode) {
				return domain.Unauthenticated("invalid MFA code")
			}
			return err
		}
		n, err := s.q.ConsumeMFAChallenge(ctx, tx, ch.ID)
		if err != nil {
			return fmt.Errorf("mfa challenge: %w", err)
		}
		if n == 0 {
			return domain.Unauthenticated("MFA challenge already used: log in again")
		}
		sess, err = s.issueSession(ctx, tx, u, uuid.Nil)
		return err
	})
	return sess, err
}

// mfaAttempt counts one code attempt for the user: MFAAttempts per minute.
func (s *Service) mfaAttempt(ctx context.Context, userID uuid.UUID) error {
	res, err := s.limiter.Hit(ctx, "mfa:"+userID.String(), s.opts.MFAAttempts, time.Minute)
	if err != nil {
		return err
	}
	if !res.Allowed {
		return &domain.RateLimitedError{Reason: "too many MFA attempts", RetryAfter: res.RetryAfter(s.now())}
	}
	return nil
}

// useCode checks a code and records its time step, so it cannot be used twice.
func (s *Service) useCode(ctx context.Context, db store.DBTX, u store.User, code string) (int64, error) {
	step, err := s.checkCode(u, code)
	if err != nil {
		return 0, err
	}
	n, err := s.q.AdvanceUserMFAStep(ctx, db, store.AdvanceUserMFAStepParams{ID: u.ID, Step: step})
	if err != nil {
		return 0, fmt.Errorf("record mfa step: %w", err)
	}
	if n == 0 {
		return 0, domain.Unauthenticated("this MFA code was already used: wait for the next one")
	}
	return step, nil
}

// checkCode validates a 6-digit code against the user's secret, allowing one
// step of clock skew either way, and returns the matching time step.
func (s *Service) checkCode(u store.User, code string) (int64, error) {
	if len(code) != 6 {
		return 0, domain.Invalid("code", "must be the 6-digit code from your authenticator app")
	}
	secret, err := s.sealer.Open(u.MfaSecret, mfaContext(u.ID))
	if err != nil {
		return 0, fmt.Errorf("open mfa secret of %s: %w", u.ID, err)
	}
	now := s.now()
	current := now.Unix() / totpPeriod
	for _, step := range []int64{current, current - 1, current + 1} {
		want, err := totp.GenerateCodeCustom(string(secret), time.Unix(step*totpPeriod, 0), totp.ValidateOpts{Period: totpPeriod, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
		if err != nil {
			return 0, fmt.Errorf("totp: %w", err)
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			return step, nil
		}
	}
	return 0, errWrongCode
}

// errWrongCode is a wrong or expired code. It answers 400 to a signed-in user
// (verify, disable) and 401 to a login challenge.
var errWrongCode = domain.Invalid("code", "is wrong or expired")
