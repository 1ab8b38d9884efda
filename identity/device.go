package identity

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/shardform/shardform/domain"
	"github.com/shardform/shardform/store"
)

// The device-authorization grant (RFC 8628), as TrueTick's `truetick
// login`: a device (the shardform CLI) asks for a device code and a user
// code, a signed-in user approves the user code for one of their
// organizations, and the device's next poll receives an API token of that
// user in that organization, minted at that moment. No secret is stored in
// plain text: the device code is kept as its SHA-256 hash, and the API token
// does not exist before the poll that delivers it (only its hash after).

// Device-flow settings of RFC 8628 §3.2.
const (
	DeviceCodeTTL       = 10 * time.Minute
	DevicePollInterval  = 5 * time.Second
	deviceSlowDownStep  = 5 * time.Second // RFC 8628 §3.5: slow_down adds 5 s to the interval
	MaxClientNameLength = 100
	// deviceKeepExpired is how long an expired authorization is kept, so a
	// late poll still answers expired_token; older ones are deleted by the
	// next create.
	deviceKeepExpired = time.Hour
)

// UserCodeAlphabet is the user code's characters: letters and digits
// without 0, O, 1 and I, which read alike. 32 characters, so each random
// byte maps onto one without bias.
const UserCodeAlphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"

// userCodeLength is the user code's length without its dash (40 bits).
const userCodeLength = 8

// DeviceRequest is the body of POST /v1/auth/device.
type DeviceRequest struct {
	ClientName string              `json:"client_name"`
	Scopes     []domain.Permission `json:"scopes"`
}

// DeviceAuthorization answers POST /v1/auth/device (RFC 8628 §3.2).
type DeviceAuthorization struct {
	DeviceCode              string `json:"device_code"`
	UserCode                string `json:"user_code"`
	VerificationURI         string `json:"verification_uri"`
	VerificationURIComplete string `json:"verification_uri_complete"`
	ExpiresIn               int    `json:"expires_in"`
	Interval                int    `json:"interval"`
}

// DeviceTokenRequest is the body of POST /v1/auth/device/token.
type DeviceTokenRequest struct {
	DeviceCode string `json:"device_code"`
}

// DeviceGrant is a delivered device authorization: the API token (with its
// secret, answered once) and the user it was minted for.
type DeviceGrant struct {
	Token  APIToken
	UserID uuid.UUID
}

// DeviceApproveRequest is the body of POST /v1/auth/device/approve.
type DeviceApproveRequest struct {
	UserCode       string    `json:"user_code"`
	OrganizationID uuid.UUID `json:"organization_id"`
}

// DeviceUserCode is the body of POST /v1/auth/device/deny.
type DeviceUserCode struct {
	UserCode string `json:"user_code"`
}

// DevicePending is what a device asks for, as an approval page shows it.
type DevicePending struct {
	ClientName string              `json:"client_name"`
	Scopes     []domain.Permission `json:"scopes"`
	ExpiresAt  time.Time           `json:"expires_at"`
	ID         uuid.UUID           `json:"-"`
}

// DeviceApproval answers an approval.
type DeviceApproval struct {
	ClientName     string              `json:"client_name"`
	Scopes         []domain.Permission `json:"scopes"`
	OrganizationID uuid.UUID           `json:"organization_id"`
	ID             uuid.UUID           `json:"-"`
}

// DeviceDenial answers a denial.
type DeviceDenial struct {
	ClientName string              `json:"client_name"`
	Scopes     []domain.Permission `json:"scopes"`
	ID         uuid.UUID           `json:"-"`
}

// NormalizeUserCode turns a user code as a person types it (any case, with
// or without its dash, surrounding spaces) into its stored form: 8
// characters of UserCodeAlphabet, without the dash.
func NormalizeUserCode(raw string) (string, error) {
	s := strings.TrimSpace(raw)
	if s == "" {
		return "", domain.Invalid("user_code", "is required")
	}
	if len(s) == userCodeLength+1 && s[userCodeLength/2] == '-' {
		s = s[:userCodeLength/2] + s[userCodeLength/2+1:]
	}
	bad := domain.Invalid("user_code", "must be the 8 characters the device shows, such as ABCD-2345 (the dash is optional)")
	if len(s) != userCodeLength {
		return "", bad
	}
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
			b[i] = c
		}
		if strings.IndexByte(UserCodeAlphabet, c) < 0 {
			return "", bad
		}
	}
	return string(b), nil
}

// FormatUserCode shows a stored user code as people read it: ABCD-2345.
func FormatUserCode(code string) string {
	if len(code) != userCodeLength {
		return code
	}
	return code[:userCodeLength/2] + "-" + code[userCodeLength/2:]
}

// newUserCode draws a random user code (stored form).
func newUserCode() (string, error) {
	b := make([]byte, userCodeLength)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate user code: %w", err)
	}
	for i := range b {
		b[i] = UserCodeAlphabet[int(b[i])%len(UserCodeAlphabet)]
	}
	return string(b), nil
}

// requireDeviceSession refuses API tokens: only a person signed in may
// hand a device a token.
func requireDeviceSession(p *domain.Principal) error {
	if p.ViaAPIToken() {
		return domain.Forbidden("an API token cannot approve a device; sign in")
	}
	return nil
}

// StartDevice begins a device authorization (POST /v1/auth/device).
// baseURL is the server's public address: the verification URI is
// baseURL + "/device". Starts are limited per client address as logins are.
func (s *Service) StartDevice(ctx context.Context, req DeviceRequest, baseURL, clientIP string) (DeviceAuthorization, error) {
	name, err := domain.Name("client_name", req.ClientName, MaxClientNameLength)
	if err != nil {
		return DeviceAuthorization{}, err
	}
	if len(req.Scopes) == 0 {
		names := make([]string, 0, len(domain.Catalog()))
		for _, c := range domain.Catalog() {
			names = append(names, string(c.Key))
		}
		return DeviceAuthorization{}, domain.Invalid("scopes", "at least one permission is required (least privilege); the catalog: %s", strings.Join(names, ", "))
	}
	set := domain.NewPermissionSet()
	for i, sc := range req.Scopes {
		if err := knownScope(i, sc); err != nil {
			return DeviceAuthorization{}, err
		}
		set[sc] = struct{}{}
	}
	res, err := s.limiter.Hit(ctx, "device:ip:"+clientIP, s.opts.LoginAttemptsPerIP, time.Minute)
	if err != nil {
		return DeviceAuthorization{}, err
	}
	if !res.Allowed {
		return DeviceAuthorization{}, &domain.RateLimitedError{Reason: "too many device logins from this address", RetryAfter: res.RetryAfter(s.now())}
	}
	now := s.now()
	if _, err := s.q.DeleteExpiredDeviceAuthorizations(ctx, s.st.Pool, now.Add(-deviceKeepExpired)); err != nil {
		return DeviceAuthorization{}, fmt.Errorf("prune device authorizations: %w", err)
	}
	deviceCode, hash, err := newSecret("")
	if err != nil {
		return DeviceAuthorization{}, err
	}
	// A user code already in use (1 in 2^40 per live row) is drawn again.
	for range 5 {
		code, err := newUserCode()
		if err != nil {
			return DeviceAuthorization{}, err
		}
		row, err := s.q.CreateDeviceAuthorization(ctx, s.st.Pool, store.CreateDeviceAuthorizationParams{
			DeviceCodeHash: hash, UserCode: code, ClientName: name, Scopes: fromPermissions(set.Sorted()),
			IntervalSeconds: int32(DevicePollInterval / time.Second), ExpiresAt: now.Add(DeviceCodeTTL), CreatedAt: now,
		})
		if store.IsNoRows(err) {
			continue
		}
		if err != nil {
			return DeviceAuthorization{}, fmt.Errorf("create device authorization: %w", err)
		}
		uri := strings.TrimRight(baseURL, "/") + "/device"
		shown := FormatUserCode(row.UserCode)
		return DeviceAuthorization{
			DeviceCode: deviceCode, UserCode: shown, VerificationURI: uri, VerificationURIComplete: uri + "?code=" + shown,
			ExpiresIn: int(DeviceCodeTTL / time.Second), Interval: int(row.IntervalSeconds),
		}, nil
	}
	return DeviceAuthorization{}, fmt.Errorf("create device authorization: no free user code after 5 draws")
}

// PollDevice answers a device's poll (POST /v1/auth/device/token): one of
// RFC 8628's errors (domain.GrantError) while the authorization is not
// approved, and once it is, a new API token of the approver in the approved
// organization. The token is delivered once: the row is locked, the token
// minted and the row marked delivered in one transaction, so a second poll
// (even a concurrent one) answers invalid_grant.
func (s *Service) PollDevice(ctx context.Context, req DeviceTokenRequest) (DeviceGrant, error) {
	if req.DeviceCode == "" {
		return DeviceGrant{}, domain.Invalid("device_code", "is required")
	}
	var grant DeviceGrant
	var answer error // a GrantError: the poll itself is recorded (committed)
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		row, err := s.q.LockDeviceAuthorizationByDeviceCode(ctx, tx, hashSecret(req.DeviceCode))
		if store.IsNoRows(err) {
			answer = domain.ErrInvalidGrant
			return nil
		}
		if err != nil {
			return fmt.Errorf("poll device authorization: %w", err)
		}
		now := s.now()
		switch {
		case row.DeliveredAt != nil:
			answer = domain.ErrInvalidGrant
		case !now.Before(row.ExpiresAt):
			answer = domain.ErrExpiredToken
		case row.DeniedAt != nil:
			answer = domain.ErrAccessDenied
		case row.ApprovedAt == nil:
			interval := row.IntervalSeconds
			answer = domain.ErrAuthorizationPending
			if row.LastPolledAt != nil && now.Sub(*row.LastPolledAt) < time.Duration(interval)*time.Second {
				interval += int32(deviceSlowDownStep / time.Second)
				answer = domain.ErrSlowDown
			}
			if err := s.q.RecordDevicePoll(ctx, tx, store.RecordDevicePollParams{ID: row.ID, PolledAt: &now, IntervalSeconds: interval}); err != nil {
				return fmt.Errorf("record device poll: %w", err)
			}
		default:
			grant, err = s.deliverDevice(ctx, tx, row, now)
			var ge *domain.GrantError
			if errors.As(err, &ge) {
				answer = ge
				return nil
			}
			return err
		}
		return nil
	})
	if err != nil {
		return DeviceGrant{}, err
	}
	if answer != nil {
		return DeviceGrant{}, answer
	}
	return grant, nil
}

// deliverDevice mints the approved authorization's token, in tx (which
// holds the row's lock). The approver's permissions are read again: the
// token carries only the requested scopes they still hold, and a lost
// membership (or no scope left) answers access_denied.
func (s *Service) deliverDevice(ctx context.Context, tx pgx.Tx, row store.DeviceAuthorization, now time.Time) (DeviceGrant, error) {
	orgID, userID := row.OrganizationID.UUID, row.ApprovedBy.UUID
	approver, err := s.memberPrincipal(ctx, tx, userID, orgID)
	if errors.Is(err, domain.ErrNotFound) {
		return DeviceGrant{}, domain.ErrAccessDenied
	}
	if err != nil {
		return DeviceGrant{}, err
	}
	scopes := heldScopes(approver, toPermissions(row.Scopes))
	if len(scopes) == 0 {
		return DeviceGrant{}, domain.ErrAccessDenied
	}
	tok, err := s.mintAPIToken(ctx, tx, approver, row.ClientName, DefaultAPITokenTTL*time.Second, scopes)
	if err != nil {
		return DeviceGrant{}, err
	}
	n, err := s.q.MarkDeviceDelivered(ctx, tx, store.MarkDeviceDeliveredParams{
		ID: row.ID, OrganizationID: row.OrganizationID, DeliveredAt: &now, ApiTokenID: uuid.NullUUID{UUID: tok.ID, Valid: true},
	})
	if err != nil {
		return DeviceGrant{}, fmt.Errorf("mark device authorization delivered: %w", err)
	}
	if n != 1 {
		return DeviceGrant{}, fmt.Errorf("mark device authorization %s delivered: %d rows", row.ID, n)
	}
	return DeviceGrant{Token: tok, UserID: userID}, nil
}

// memberPrincipal is userID as a member of orgID (a session's permissions
// there), or domain.NotFound("organization") when they are not a member.
func (s *Service) memberPrincipal(ctx context.Context, db store.DBTX, userID, orgID uuid.UUID) (*domain.Principal, error) {
	row, err := s.q.GetPrincipalForUser(ctx, db, store.GetPrincipalForUserParams{
		UserID: userID, OrgID: uuid.NullUUID{UUID: orgID, Valid: true},
	})
	if store.IsNoRows(err) || err == nil && row.OrganizationID != orgID {
		return nil, domain.NotFound("organization")
	}
	if err != nil {
		return nil, fmt.Errorf("load membership: %w", err)
	}
	role := domain.Role(row.Role)
	return &domain.Principal{UserID: row.ID, Email: row.Email, IsAdmin: row.IsAdmin, HasOrg: true, OrgID: orgID, Role: role,
		Perms: domain.EffectivePermissions(role, toPermissions(row.Grants))}, nil
}

// pendingDevice checks the authorization a user-code lookup answered: it
// must exist, be live and be neither approved nor denied.
func (s *Service) pendingDevice(row store.DeviceAuthorization, err error) (store.DeviceAuthorization, error) {
	if store.IsNoRows(err) {
		return row, domain.NotFound("user code")
	}
	if err != nil {
		return row, fmt.Errorf("load device authorization: %w", err)
	}
	switch {
	case !s.now().Before(row.ExpiresAt):
		return row, domain.Invalid("user_code", "has expired: start the login on the device again")
	case row.ApprovedAt != nil:
		return row, domain.Conflict("this device login was already approved")
	case row.DeniedAt != nil:
		return row, domain.Conflict("this device login was already denied")
	}
	return row, nil
}

// GetDevice shows what a user code asks for (GET /v1/auth/device), for a
// signed-in user about to approve it.
func (s *Service) GetDevice(ctx context.Context, p *domain.Principal, userCode string) (DevicePending, error) {
	if err := requireDeviceSession(p); err != nil {
		return DevicePending{}, err
	}
	code, err := NormalizeUserCode(userCode)
	if err != nil {
		return DevicePending{}, err
	}
	row, err := s.pendingDevice(s.q.GetDeviceAuthorizationByUserCode(ctx, s.st.Pool, code))
	if err != nil {
		return DevicePending{}, err
	}
	return DevicePending{ClientName: row.ClientName, Scopes: toPermissions(row.Scopes), ExpiresAt: row.ExpiresAt, ID: row.ID}, nil
}

// ApproveDevice approves a user code for one of the caller's organizations
// (POST /v1/auth/device/approve). Only a session may: an API token is
// refused. The device gets the requested scopes the caller holds there (a
// token never carries more than its creator may do; RFC 6749 lets a grant
// be narrower than asked, and the token lists its scopes); the approval is
// refused if the caller holds none of them.
func (s *Service) ApproveDevice(ctx context.Context, p *domain.Principal, req DeviceApproveRequest) (DeviceApproval, error) {
	if err := requireDeviceSession(p); err != nil {
		return DeviceApproval{}, err
	}
	code, err := NormalizeUserCode(req.UserCode)
	if err != nil {
		return DeviceApproval{}, err
	}
	if req.OrganizationID == uuid.Nil {
		return DeviceApproval{}, domain.Invalid("organization_id", "is required")
	}
	var out DeviceApproval
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		approver, err := s.memberPrincipal(ctx, tx, p.UserID, req.OrganizationID)
		if err != nil {
			return err
		}
		row, err := s.pendingDevice(s.q.LockDeviceAuthorizationByUserCode(ctx, tx, code))
		if err != nil {
			return err
		}
		scopes := heldScopes(approver, toPermissions(row.Scopes))
		if len(scopes) == 0 {
			return domain.Forbidden("scopes: you hold none of %s in this organization", joinScopes(toPermissions(row.Scopes)))
		}
		now := s.now()
		n, err := s.q.ApproveDeviceAuthorization(ctx, tx, store.ApproveDeviceAuthorizationParams{
			ID: row.ID, OrganizationID: uuid.NullUUID{UUID: approver.OrgID, Valid: true},
			ApprovedBy: uuid.NullUUID{UUID: approver.UserID, Valid: true}, ApprovedAt: &now,
		})
		if err != nil {
			return fmt.Errorf("approve device authorization: %w", err)
		}
		if n != 1 {
			return fmt.Errorf("approve device authorization %s: %d rows", row.ID, n)
		}
		out = DeviceApproval{ClientName: row.ClientName, Scopes: scopes, OrganizationID: approver.OrgID, ID: row.ID}
		return nil
	})
	if err != nil {
		return DeviceApproval{}, err
	}
	return out, nil
}

// DenyDevice refuses a user code (POST /v1/auth/device/deny): the
// device's next poll answers access_denied. Only a session may.
func (s *Service) DenyDevice(ctx context.Context, p *domain.Principal, req DeviceUserCode) (DeviceDenial, error) {
	if err := requireDeviceSession(p); err != nil {
		return DeviceDenial{}, err
	}
	code, err := NormalizeUserCode(req.UserCode)
	if err != nil {
		return DeviceDenial{}, err
	}
	var out DeviceDenial
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		row, err := s.pendingDevice(s.q.LockDeviceAuthorizationByUserCode(ctx, tx, code))
		if err != nil {
			return err
		}
		now := s.now()
		n, err := s.q.DenyDeviceAuthorization(ctx, tx, store.DenyDeviceAuthorizationParams{
			ID: row.ID, DeniedBy: uuid.NullUUID{UUID: p.UserID, Valid: true}, DeniedAt: &now,
		})
		if err != nil {
			return fmt.Errorf("deny device authorization: %w", err)
		}
		if n != 1 {
			return fmt.Errorf("deny device authorization %s: %d rows", row.ID, n)
		}
		out = DeviceDenial{ClientName: row.ClientName, Scopes: toPermissions(row.Scopes), ID: row.ID}
		return nil
	})
	if err != nil {
		return DeviceDenial{}, err
	}
	return out, nil
}

// heldScopes is the requested scopes p holds, sorted without duplicates.
func heldScopes(p *domain.Principal, scopes []domain.Permission) []domain.Permission {
	set := domain.NewPermissionSet()
	for _, sc := range scopes {
		if p.Perms.Has(sc) {
			set[sc] = struct{}{}
		}
	}
	return set.Sorted()
}

func joinScopes(scopes []domain.Permission) string {
	names := make([]string, len(scopes))
	for i, sc := range scopes {
		names[i] = string(sc)
	}
	return strings.Join(names, ", ")
}
