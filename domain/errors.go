package domain

import (
	"errors"
	"fmt"
	"time"
)

// Sentinel errors. Domain code wraps them with the operation
// ("get organization 123: %w") and callers test them with errors.Is.
var (
	// ErrNotFound: the resource does not exist, or the caller may not know it exists.
	ErrNotFound = errors.New("not found")
	// ErrConflict: the request collides with the current state (duplicate, wrong status).
	ErrConflict = errors.New("conflict")
	// ErrUnauthenticated: no credential, or a credential that is invalid, expired or revoked.
	ErrUnauthenticated = errors.New("unauthenticated")
	// ErrForbidden: the caller is known but lacks the permission.
	ErrForbidden = errors.New("forbidden")
)

// ValidationError reports bad input: the field and the rule it broke.
type ValidationError struct {
	Field string
	Rule  string
}

func (e *ValidationError) Error() string {
	if e.Field == "" {
		return e.Rule
	}
	return e.Field + ": " + e.Rule
}

// Invalid returns a *ValidationError for field breaking rule (a format string).
func Invalid(field, rule string, args ...any) error {
	return &ValidationError{Field: field, Rule: fmt.Sprintf(rule, args...)}
}

// RateLimitedError: too many requests; the caller may try again after RetryAfter.
type RateLimitedError struct {
	Reason     string
	RetryAfter time.Duration
}

func (e *RateLimitedError) Error() string { return e.Reason }

// PublicError wraps a sentinel with a message that is safe to show to the caller.
// errors.Is(err, ErrConflict) still holds; the API answers with Message.
type PublicError struct {
	Kind    error
	Message string
}

func (e *PublicError) Error() string { return e.Message }
func (e *PublicError) Unwrap() error { return e.Kind }

// NotFound returns an ErrNotFound whose message names what was not found.
func NotFound(what string) error {
	return &PublicError{Kind: ErrNotFound, Message: what + " not found"}
}

// Conflict returns an ErrConflict with a message for the caller.
func Conflict(format string, args ...any) error {
	return &PublicError{Kind: ErrConflict, Message: fmt.Sprintf(format, args...)}
}

// Forbidden returns an ErrForbidden with a message for the caller.
func Forbidden(format string, args ...any) error {
	return &PublicError{Kind: ErrForbidden, Message: fmt.Sprintf(format, args...)}
}

// Unauthenticated returns an ErrUnauthenticated with a message for the caller.
func Unauthenticated(format string, args ...any) error {
	return &PublicError{Kind: ErrUnauthenticated, Message: fmt.Sprintf(format, args...)}
}

// ErrUnprocessable: the request is well-formed but cannot be carried out as asked.
var ErrUnprocessable = errors.New("unprocessable")

// ErrUnavailable: the request is fine but nothing could carry it out in
// time (no worker answered); the caller may try again later.
var ErrUnavailable = errors.New("unavailable")

// Unavailable returns an ErrUnavailable with a message for the caller.
func Unavailable(format string, args ...any) error {
	return &PublicError{Kind: ErrUnavailable, Message: fmt.Sprintf(format, args...)}
}

// GrantError is an error of an OAuth 2.0 token endpoint (RFC 6749 §5.2,
// RFC 8628 §3.5): the poll of a device authorization. The API answers 400
// with the code itself as the message ({"error": "authorization_pending"}),
// as OAuth clients expect.
type GrantError struct {
	Code string
}

func (e *GrantError) Error() string { return e.Code }

// The device-authorization grant's answers to a poll (RFC 8628 §3.5), and
// invalid_grant for a device code that is unknown or already used.
var (
	ErrAuthorizationPending = &GrantError{Code: "authorization_pending"}
	ErrSlowDown             = &GrantError{Code: "slow_down"}
	ErrAccessDenied         = &GrantError{Code: "access_denied"}
	ErrExpiredToken         = &GrantError{Code: "expired_token"}
	ErrInvalidGrant         = &GrantError{Code: "invalid_grant"}
)
