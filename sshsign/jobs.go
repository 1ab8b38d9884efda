package sshsign

import (
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/riverqueue/river"

	"github.com/shardform/shardform/audit"
	"github.com/shardform/shardform/domain"
)

// QueueSSH is the queue of signing jobs: its own, so Terraform runs never
// delay a certificate.
const QueueSSH = "ssh"

// KindSign is the job kind that signs one certificate.
const KindSign = "ssh_sign"

// SignArgs is one certificate request, as the API validated it.
type SignArgs struct {
	OrganizationID uuid.UUID `json:"organization_id"`
	UserID         uuid.UUID `json:"user_id"`
	User           string    `json:"user"` // the requester's e-mail, named in the key id
	// Username is the requester's own login name (see Username), always an
	// allowed principal; "" for none.
	Username      string     `json:"username,omitempty"`
	PublicKey     string     `json:"public_key"`
	Principals    []string   `json:"principals"`
	ValidityHours *int       `json:"validity_hours,omitempty"`
	SourceAddress string     `json:"source_address,omitempty"`
	NodeID        *uuid.UUID `json:"node_id,omitempty"`
	// NotAfter is when the API stops waiting: a job picked up later is
	// cancelled instead of signing a certificate nobody will receive.
	NotAfter time.Time `json:"not_after"`
	// Reply names the waiting API request (process and request), which the
	// worker wakes when the job ends; "" for none.
	Reply string `json:"reply,omitempty"`
	// Audit is the API request's audit entry, written with the record.
	Audit *AuditArgs `json:"audit,omitempty"`
}

// signArgsJSON is how SignArgs are stored in the job row: the whole request
// as one JSON string under "request". River keeps a GIN index over every key
// and value of every job's args and updates it for each of the job's three
// row versions (insert, fetch, completion); the ~30 keys and values of a
// plain SignArgs, most of them shared by every job (the same keys, the same
// organization, user and principals), cost Postgres more than anything else
// per certificate. One key and one (hashed) value cost about nothing.
type signArgsJSON struct {
	Request string `json:"request"`
}

// signArgsFields is SignArgs without its JSON methods.
type signArgsFields SignArgs

// MarshalJSON stores the request as one string (see signArgsJSON).
func (a SignArgs) MarshalJSON() ([]byte, error) {
	inner, err := json.Marshal(signArgsFields(a))
	if err != nil {
		return nil, err
	}
	return json.Marshal(signArgsJSON{Request: string(inner)})
}

// UnmarshalJSON reads the stored form, or the plain object of a job
// inserted by an earlier version.
func (a *SignArgs) UnmarshalJSON(b []byte) error {
	var outer struct {
		Request *string `json:"request"`
	}
	if err := json.Unmarshal(b, &outer); err != nil {
		return err
	}
	if outer.Request == nil {
		return json.Unmarshal(b, (*signArgsFields)(a))
	}
	return json.Unmarshal([]byte(*outer.Request), (*signArgsFields)(a))
}

// AuditArgs is what a signing job carries of the API request's audit entry;
// the organization, the user and the target (the certificate) it has
// anyway. Kept small: it is written into the job row three times (insert,
// fetch, completion).
type AuditArgs struct {
	Action     string     `json:"action"`
	Status     int        `json:"status"`
	RequestID  string     `json:"request_id,omitempty"`
	IP         string     `json:"ip,omitempty"`
	APITokenID *uuid.UUID `json:"api_token_id,omitempty"`
}

// auditArgsOf is the part of e a job carries; nil for none.
func auditArgsOf(e *audit.Entry) *AuditArgs {
	if e == nil {
		return nil
	}
	a := &AuditArgs{Action: e.Action, Status: e.Status, RequestID: e.RequestID, IP: e.IP}
	if e.APITokenID.Valid {
		id := e.APITokenID.UUID
		a.APITokenID = &id
	}
	return a
}

// Kind implements river.JobArgs.
func (SignArgs) Kind() string { return KindSign }

// InsertOpts puts the job on the ssh queue. A failed attempt is retried
// only while the API still waits (see NotAfter).
func (SignArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueSSH, MaxAttempts: 3}
}

// Job is one ssh_sign job handed to RunSign by the worker.
type Job struct {
	ID int64
	// Attempt counts the job's runs from 1: a later attempt first looks for
	// the certificate an earlier one recorded.
	Attempt int
	Args    SignArgs
}

// signFailure carries a domain error from the worker to the waiting API
// process through the job's error record (River keeps err.Error()).
type signFailure struct {
	Kind    string `json:"ssh_sign_failure"` // invalid, forbidden, not_found, expired
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

func (f *signFailure) Error() string {
	b, _ := json.Marshal(f)
	return string(b)
}

// failureOf describes a domain error for the job record; ok is false for
// internal errors (which River retries).
func failureOf(err error) (*signFailure, bool) {
	var verr *domain.ValidationError
	var pub *domain.PublicError
	switch {
	case errors.As(err, &verr):
		return &signFailure{Kind: "invalid", Field: verr.Field, Message: verr.Rule}, true
	case errors.Is(err, domain.ErrForbidden):
		msg := "forbidden"
		if errors.As(err, &pub) {
			msg = pub.Message
		}
		return &signFailure{Kind: "forbidden", Message: msg}, true
	case errors.Is(err, domain.ErrNotFound):
		msg := "not found"
		if errors.As(err, &pub) {
			msg = pub.Message
		}
		return &signFailure{Kind: "not_found", Message: msg}, true
	}
	return nil, false
}

// parseFailure turns a job's recorded error back into a domain error.
func parseFailure(text string) (error, bool) {
	i := strings.IndexByte(text, '{')
	if i < 0 {
		return nil, false
	}
	var f signFailure
	if json.Unmarshal([]byte(text[i:]), &f) != nil || f.Kind == "" {
		return nil, false
	}
	switch f.Kind {
	case "invalid":
		return &domain.ValidationError{Field: f.Field, Rule: f.Message}, true
	case "forbidden":
		return &domain.PublicError{Kind: domain.ErrForbidden, Message: f.Message}, true
	case "not_found":
		return &domain.PublicError{Kind: domain.ErrNotFound, Message: f.Message}, true
	}
	return nil, false
}
