package identity

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/shardform/shardform/domain"
	"github.com/shardform/shardform/store"
)

// Session is what a successful login or refresh returns.
type Session struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	ExpiresIn    int    `json:"expires_in"`
	TokenType    string `json:"token_type"`
}

// refreshPrefix marks refresh tokens so they are never mistaken for API tokens.
const refreshPrefix = "sfr_"

type accessClaims struct {
	jwt.RegisteredClaims
	// SessionVersion must equal the user's current one: a password change bumps it.
	SessionVersion int32 `json:"sv"`
}

// issueSession creates an access token and a refresh token of family (a new
// family when uuid.Nil) for user, on db (a pool or the caller's transaction).
func (s *Service) issueSession(ctx context.Context, db store.DBTX, user store.User, family uuid.UUID) (Session, error) {
	now := s.now()
	claims := accessClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    s.opts.Issuer,
			Subject:   user.ID.String(),
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(s.opts.AccessTTL)),
			ID:        uuid.NewString(),
		},
		SessionVersion: user.SessionVersion,
	}
	access, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(s.jwtKey)
	if err != nil {
		return Session{}, fmt.Errorf("sign access token: %w", err)
	}
	refresh, hash, err := newSecret(refreshPrefix)
	if err != nil {
		return Session{}, err
	}
	if family == uuid.Nil {
		family = uuid.New()
	}
	if _, err := s.q.CreateRefreshToken(ctx, db, store.CreateRefreshTokenParams{
		FamilyID: family, UserID: user.ID, TokenHash: hash, ExpiresAt: now.Add(s.opts.RefreshTTL),
	}); err != nil {
		return Session{}, fmt.Errorf("store refresh token: %w", err)
	}
	return Session{AccessToken: access, RefreshToken: refresh, ExpiresIn: int(s.opts.AccessTTL.Seconds()), TokenType: "Bearer"}, nil
}

// Refresh trades a refresh token for a new session. The used token stops
// working; presenting an already-used (rotated) token again revokes the whole
// family, since one of the two holders must have stolen it.
func (s *Service) Refresh(ctx context.Context, refreshToken string) (Session, error) {
	if refreshToken == "" {
		return Session{}, domain.Invalid("refresh_token", "is required")
	}
	hash := hashSecret(refreshToken)
	var sess Session
	var reused bool
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		rt, err := s.q.UseRefreshToken(ctx, tx, hash)
		if store.IsNoRows(err) {
			old, gerr := s.q.GetRefreshToken(ctx, tx, hash)
			if gerr != nil {
				if store.IsNoRows(gerr) {
					return domain.Unauthenticated("invalid refresh token")
				}
				return fmt.Errorf("look up refresh token: %w", gerr)
			}
			if old.UsedAt != nil && old.RevokedAt == nil {
				if s.opts.RefreshReuseInterval > 0 {
					ok, err := s.q.RefreshTokenReusable(ctx, tx, store.RefreshTokenReusableParams{
						TokenHash: hash, Seconds: s.opts.RefreshReuseInterval.Seconds()})
					if err != nil {
						return fmt.Errorf("look up refresh token: %w", err)
					}
					if ok {
						user, err := s.q.GetUserByID(ctx, tx, old.UserID)
						if err != nil {
							return fmt.Errorf("load user: %w", err)
						}
						sess, err = s.issueSession(ctx, tx, user, old.FamilyID)
						return err
					}
				}
				reused = true
				return s.q.RevokeRefreshFamily(ctx, tx, old.FamilyID)
			}
			return domain.Unauthenticated("refresh token expired or revoked")
		}
		if err != nil {
			return fmt.Errorf("use refresh token: %w", err)
		}
		user, err := s.q.GetUserByID(ctx, tx, rt.UserID)
		if err != nil {
			return fmt.Errorf("load user: %w", err)
		}
		sess, err = s.issueSession(ctx, tx, user, rt.FamilyID)
		return err
	})
	if err != nil {
		return Session{}, err
	}
	if reused {
		return Session{}, domain.Unauthenticated("refresh token was already used: every session of this login is revoked, log in again")
	}
	return sess, nil
}

// ParseAccessToken checks an access token's signature, issuer and expiry and
// returns its user and session version. Whether the user still exists and
// the version is current is checked by Authenticate.
func (s *Service) parseAccessToken(token string) (uuid.UUID, int32, error) {
	var claims accessClaims
	_, err := jwt.ParseWithClaims(token, &claims, func(*jwt.Token) (any, error) { return s.jwtKey, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithIssuer(s.opts.Issuer),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(s.now),
	)
	if err != nil {
		if errors.Is(err, jwt.ErrTokenExpired) {
			return uuid.Nil, 0, domain.Unauthenticated("access token expired: refresh it or log in again")
		}
		return uuid.Nil, 0, domain.Unauthenticated("invalid access token")
	}
	id, err := uuid.Parse(claims.Subject)
	if err != nil {
		return uuid.Nil, 0, domain.Unauthenticated("invalid access token")
	}
	return id, claims.SessionVersion, nil
}

// looksLikeJWT tells an access token from other bearer strings.
func looksLikeJWT(s string) bool { return strings.Count(s, ".") == 2 }

// Logout revokes the refresh token's whole family (this login on every
// device it was refreshed on). An unknown token is not an error.
func (s *Service) Logout(ctx context.Context, refreshToken string) error {
	if refreshToken == "" {
		return domain.Invalid("refresh_token", "is required")
	}
	rt, err := s.q.GetRefreshToken(ctx, s.st.Pool, hashSecret(refreshToken))
	if store.IsNoRows(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("logout: %w", err)
	}
	if err := s.q.RevokeRefreshFamily(ctx, s.st.Pool, rt.FamilyID); err != nil {
		return fmt.Errorf("logout: %w", err)
	}
	return nil
}
