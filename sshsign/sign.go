package sshsign

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/riverqueue/river"

	"github.com/shardform/shardform/audit"
	"github.com/shardform/shardform/domain"
	"github.com/shardform/shardform/sshca"
	"github.com/shardform/shardform/store"
)

// SignRequest is the body of POST /v1/ssh/certificate.
type SignRequest struct {
	PublicKey     string   `json:"public_key"`
	Principals    []string `json:"principals"`
	ValidityHours *int     `json:"validity_hours"`
	NodeID        *string  `json:"node_id"`
	SourceAddress string   `json:"source_address"`
	// Audit is the API request's audit entry (set by the API, never read
	// from the body): the worker writes it with the certificate's record.
	Audit *audit.Entry `json:"-"`
}

// Signed is the answer to a signing request.
type Signed struct {
	ID            uuid.UUID `json:"id"`
	Certificate   string    `json:"certificate"`
	SerialNumber  uint64    `json:"serial_number"`
	KeyID         string    `json:"key_id"`
	ValidAfter    time.Time `json:"valid_after"`
	ValidBefore   time.Time `json:"valid_before"`
	Principals    []string  `json:"principals"`
	CAFingerprint string    `json:"ca_fingerprint"`
}

// request builds the sshca request of a job.
func (a SignArgs) request(serial uint64) sshca.Request {
	return sshca.Request{
		PublicKey: a.PublicKey, Principals: a.Principals, ValidityHours: a.ValidityHours, SourceAddress: a.SourceAddress,
		User: a.User, Username: a.Username, OrganizationID: a.OrganizationID.String(), Serial: serial,
	}
}

// Sign validates the request in this process (nothing is queued or recorded
// if it is refused), queues an ssh_sign job and waits for the certificate the
// worker records (ssh:sign).
func (s *Service) Sign(ctx context.Context, p *domain.Principal, req SignRequest) (Signed, error) {
	if err := need(p, domain.PermSSHSign); err != nil {
		return Signed{}, err
	}
	if s.queue == nil {
		return Signed{}, errors.New("sign certificate: no job queue configured")
	}
	args := SignArgs{
		OrganizationID: p.OrgID, UserID: p.UserID, User: p.Email, Username: Username(p.Email), PublicKey: req.PublicKey,
		Principals: req.Principals, ValidityHours: req.ValidityHours, SourceAddress: req.SourceAddress, Audit: auditArgsOf(req.Audit),
	}
	if args.User == "" {
		args.User = p.UserID.String()
	}
	if req.NodeID != nil {
		id, err := uuid.Parse(*req.NodeID)
		if err != nil {
			return Signed{}, domain.Invalid("node_id", "must be a node id (a UUID)")
		}
		ok, err := s.q.SSHNodeExists(ctx, s.st.Pool, store.SSHNodeExistsParams{OrganizationID: p.OrgID, ID: id})
		if err != nil {
			return Signed{}, fmt.Errorf("sign certificate: look up node: %w", err)
		}
		if !ok {
			return Signed{}, domain.NotFound("node")
		}
		args.NodeID = &id
	}
	// The policy and signing key (created on first use) come from memory
	// when fresh; the worker checks again against the current ones.
	ca, err := s.ca(ctx, p.OrgID)
	if err != nil {
		return Signed{}, err
	}
	if err := sshca.Check(ca.policy, args.request(1)); err != nil {
		return Signed{}, err
	}
	wt := s.register()
	args.Reply = wt.reply
	// The worker compares NotAfter with the injected clock: a time on
	// it. The wait itself is real time (see waitForJob).
	start := time.Now()
	args.NotAfter = s.now().Add(s.timeout)
	jobID, err := s.enqueue(ctx, args)
	if err != nil {
		s.unregister(wt)
		return Signed{}, fmt.Errorf("sign certificate: enqueue: %w", err)
	}
	signed, err := waitForJob(ctx, s, wt, jobID, start, func(ctx context.Context) (Signed, error) {
		row, err := s.q.GetSSHCertificateByJob(ctx, s.st.Pool, store.GetSSHCertificateByJobParams{OrganizationID: p.OrgID, JobID: pgtype.Int8{Int64: jobID, Valid: true}})
		if err != nil {
			return Signed{}, err
		}
		return signedOf(row), nil
	})
	s.observe("user", time.Since(start), err)
	return signed, err
}

// signedOf is the answer for a recorded certificate.
func signedOf(row store.GetSSHCertificateByJobRow) Signed {
	return Signed{ID: row.ID, Certificate: row.Certificate, SerialNumber: uint64(row.Serial), KeyID: row.KeyID,
		ValidAfter: row.ValidAfter, ValidBefore: row.ValidBefore, Principals: row.Principals, CAFingerprint: row.CaFingerprint}
}

// enqueue inserts a signing job, combined with the other requests' jobs
// waiting at that moment (see batch.Combiner), and returns its id.
func (s *Service) enqueue(ctx context.Context, args river.JobArgs) (int64, error) {
	return s.inserts.Do(ctx, args)
}

// insertJobs inserts signing jobs in one transaction whose commit does not
// wait for the disk: a job is only worth something once a worker records
// its certificate, and that commit is synchronous and later in the WAL, so
// it makes the job durable too. A job lost in a crash was never answered
// (the waiting request fails), so nothing is handed out unrecorded.
func (s *Service) insertJobs(ctx context.Context, args []river.JobArgs) ([]int64, error) {
	params := make([]river.InsertManyParams, len(args))
	for i, a := range args {
		params[i] = river.InsertManyParams{Args: a}
	}
	ids := make([]int64, 0, len(args))
	err := pgx.BeginTxFunc(ctx, s.st.Pool, asyncCommit, func(tx pgx.Tx) error {
		res, err := s.queue.InsertManyTx(ctx, tx, params)
		if err != nil {
			return err
		}
		for _, r := range res {
			ids = append(ids, r.Job.ID)
		}
		return nil
	})
	return ids, err
}

// asyncCommit begins a transaction whose commit does not wait for the WAL
// flush, in the same round trip as BEGIN.
var asyncCommit = pgx.TxOptions{BeginQuery: "BEGIN; SET LOCAL synchronous_commit TO OFF"}

// RunSign is the ssh_sign worker: it validates the request again against
// the organization's policy, signs with the organization's signing key
// (both from memory when fresh), and records the certificate (with the API
// request's audit entry) in one statement before it answers, so no
// certificate is handed out unrecorded; River completes the job afterwards.
// The record is refused if the key or the policy changed since they were
// read; RunSign then reads them again and signs again (with a new serial).
// Refused requests cancel the job with the reason, which the waiting
// request also receives directly.
//
// A worker that dies after recording but before River completes the job
// leaves a job that runs again: that attempt hands out the recorded
// certificate instead of signing another (ssh_certificates.job_id is
// unique).
func (s *Service) RunSign(ctx context.Context, j Job) error {
	a := j.Args
	if j.Attempt > 1 && j.ID != 0 {
		row, err := s.q.GetSSHCertificateByJob(ctx, s.st.Pool, store.GetSSHCertificateByJobParams{
			OrganizationID: a.OrganizationID, JobID: pgtype.Int8{Int64: j.ID, Valid: true}})
		switch {
		case err == nil:
			s.answer(ctx, a.Reply, signedOf(row), nil)
			return nil
		case !store.IsNoRows(err):
			return fmt.Errorf("look up the certificate of job %d: %w", j.ID, err)
		}
	}
	if !a.NotAfter.IsZero() && s.now().After(a.NotAfter) {
		return river.JobCancel(errors.New("the request expired before a worker signed it"))
	}
	refuse := func(err error) error {
		if f, ok := failureOf(err); ok {
			s.answer(ctx, a.Reply, nil, err)
			return river.JobCancel(f)
		}
		return err
	}
	var node uuid.NullUUID
	if a.NodeID != nil {
		node = uuid.NullUUID{UUID: *a.NodeID, Valid: true}
	}
	for attempt := 0; ; attempt++ {
		ca, err := s.ca(ctx, a.OrganizationID)
		if err != nil {
			return err
		}
		// Validate before a serial is spent.
		if err := sshca.Check(ca.policy, a.request(1)); err != nil {
			return refuse(err)
		}
		auth, err := s.authority(ca.key)
		if err != nil {
			return err
		}
		serial, err := s.nextSerial(ctx)
		if err != nil {
			return err
		}
		cert, err := auth.Sign(ca.policy, a.request(uint64(serial)))
		if err != nil {
			return refuse(err)
		}
		if s.beforeRecord != nil {
			if err := s.beforeRecord(ctx); err != nil {
				return err
			}
		}
		rec := certRecord{
			OrganizationID: a.OrganizationID, CAKeyID: ca.key.ID, UserID: uuid.NullUUID{UUID: a.UserID, Valid: a.UserID != uuid.Nil},
			NodeID: node, Serial: serial, KeyID: cert.KeyID, Principals: cert.Principals, KeyType: cert.KeyType,
			KeyFingerprint: cert.KeyFingerprint, Extensions: cert.Extensions, SourceAddress: cert.SourceAddress,
			ValidAfter: cert.ValidAfter, ValidBefore: cert.ValidBefore, Certificate: cert.AuthorizedKey,
			PolicyVersion: ca.policyVersion, auditColumns: auditColumnsOf(a.Audit),
		}
		if j.ID != 0 {
			rec.JobID = &j.ID
		}
		res, err := s.records.Do(ctx, rec)
		if err != nil {
			return fmt.Errorf("record certificate serial %d: %w", serial, err)
		}
		if !res.recorded && attempt < 3 {
			// The signing key or the policy changed meanwhile.
			s.invalidate(a.OrganizationID)
			continue
		}
		if !res.recorded {
			return fmt.Errorf("record certificate serial %d: the CA key or policy keeps changing", serial)
		}
		s.answer(ctx, a.Reply, Signed{ID: res.id, Certificate: cert.AuthorizedKey, SerialNumber: cert.Serial, KeyID: cert.KeyID,
			ValidAfter: cert.ValidAfter, ValidBefore: cert.ValidBefore, Principals: cert.Principals,
			CAFingerprint: ca.key.Fingerprint}, nil)
		return nil
	}
}

// certRecord is one certificate to record (a row of RecordSSHCertificates'
// JSON input).
type certRecord struct {
	OrganizationID uuid.UUID     `json:"organization_id"`
	CAKeyID        uuid.UUID     `json:"ca_key_id"`
	UserID         uuid.NullUUID `json:"user_id"`
	NodeID         uuid.NullUUID `json:"node_id"`
	Serial         int64         `json:"serial"`
	KeyID          string        `json:"key_id"`
	Principals     []string      `json:"principals"`
	KeyType        string        `json:"key_type"`
	KeyFingerprint string        `json:"key_fingerprint"`
	Extensions     []string      `json:"extensions"`
	SourceAddress  string        `json:"source_address"`
	ValidAfter     time.Time     `json:"valid_after"`
	ValidBefore    time.Time     `json:"valid_before"`
	Certificate    string        `json:"certificate"`
	JobID          *int64        `json:"job_id"`
	PolicyVersion  int64         `json:"policy_version"`
	auditColumns
}

// recordResult is what became of a certRecord: recorded under id, or
// refused because its CA key or policy is no longer current.
type recordResult struct {
	id       uuid.UUID
	recorded bool
}

// recordCertificates records a batch of certificates in one statement.
func (s *Service) recordCertificates(ctx context.Context, recs []certRecord) ([]recordResult, error) {
	raw, err := json.Marshal(recs)
	if err != nil {
		return nil, err
	}
	rows, err := s.q.RecordSSHCertificates(ctx, s.st.Pool, raw)
	if err != nil {
		return nil, err
	}
	bySerial := make(map[int64]uuid.UUID, len(rows))
	for _, r := range rows {
		bySerial[r.Serial] = r.ID
	}
	out := make([]recordResult, len(recs))
	for i, r := range recs {
		out[i].id, out[i].recorded = bySerial[r.Serial]
	}
	return out, nil
}

// auditColumns is an API request's audit entry as the record statements
// take it; a nil entry writes none.
type auditColumns struct {
	AuditAPITokenID uuid.NullUUID `json:"audit_api_token_id"`
	AuditAction     *string       `json:"audit_action"`
	AuditStatus     int32         `json:"audit_status"`
	AuditRequestID  string        `json:"audit_request_id"`
	AuditIP         string        `json:"audit_ip"`
}

func auditColumnsOf(a *AuditArgs) auditColumns {
	if a == nil {
		return auditColumns{}
	}
	action := a.Action
	c := auditColumns{AuditAction: &action, AuditStatus: int32(a.Status), AuditRequestID: a.RequestID, AuditIP: a.IP}
	if a.APITokenID != nil {
		c.AuditAPITokenID = uuid.NullUUID{UUID: *a.APITokenID, Valid: true}
	}
	return c
}

// ---- issued certificates ----

// Certificate is an issued certificate as the API lists it.
type Certificate struct {
	ID             uuid.UUID  `json:"id"`
	UserID         *uuid.UUID `json:"user_id"`
	NodeID         *uuid.UUID `json:"node_id"`
	SerialNumber   uint64     `json:"serial_number"`
	KeyID          string     `json:"key_id"`
	Principals     []string   `json:"principals"`
	KeyType        string     `json:"key_type"`
	KeyFingerprint string     `json:"key_fingerprint"`
	Extensions     []string   `json:"extensions"`
	SourceAddress  string     `json:"source_address"`
	ValidAfter     time.Time  `json:"valid_after"`
	ValidBefore    time.Time  `json:"valid_before"`
	RevokedAt      *time.Time `json:"revoked_at"`
	State          string     `json:"state"` // active, expired or revoked
	CAKeyID        uuid.UUID  `json:"ca_key_id"`
	CAFingerprint  string     `json:"ca_fingerprint"`
	Certificate    string     `json:"certificate"`
	CreatedAt      time.Time  `json:"created_at"`
}

func (s *Service) certView(r store.GetSSHCertificateRow) Certificate {
	c := Certificate{ID: r.ID, SerialNumber: uint64(r.Serial), KeyID: r.KeyID, Principals: r.Principals, KeyType: r.KeyType,
		KeyFingerprint: r.KeyFingerprint, Extensions: r.Extensions, SourceAddress: r.SourceAddress, ValidAfter: r.ValidAfter,
		ValidBefore: r.ValidBefore, RevokedAt: r.RevokedAt, CAKeyID: r.CaKeyID, CAFingerprint: r.CaFingerprint,
		Certificate: r.Certificate, CreatedAt: r.CreatedAt}
	if r.UserID.Valid {
		id := r.UserID.UUID
		c.UserID = &id
	}
	if r.NodeID.Valid {
		id := r.NodeID.UUID
		c.NodeID = &id
	}
	switch {
	case r.RevokedAt != nil:
		c.State = "revoked"
	case !r.ValidBefore.After(s.now()):
		c.State = "expired"
	default:
		c.State = "active"
	}
	if c.Extensions == nil {
		c.Extensions = []string{}
	}
	return c
}

// Filter narrows a certificate list.
type Filter struct {
	UserID string // a user id, or "me"
	NodeID string
	State  string // active, expired, revoked
}

// ListCertificates lists issued certificates, newest first. ssh:admin sees
// every certificate of the organization; ssh:sign only the caller's own.
func (s *Service) ListCertificates(ctx context.Context, p *domain.Principal, f Filter, page domain.Page) ([]Certificate, int64, error) {
	admin := p.Can(domain.PermSSHAdmin)
	if !admin {
		if err := need(p, domain.PermSSHSign); err != nil {
			return nil, 0, err
		}
	}
	var user, node uuid.NullUUID
	switch f.UserID {
	case "":
	case "me":
		user = uuid.NullUUID{UUID: p.UserID, Valid: true}
	default:
		id, err := uuid.Parse(f.UserID)
		if err != nil {
			return nil, 0, domain.Invalid("user", "must be a user id or \"me\"")
		}
		user = uuid.NullUUID{UUID: id, Valid: true}
	}
	if !admin {
		if user.Valid && user.UUID != p.UserID {
			return nil, 0, domain.Forbidden("listing other users' certificates needs %s", domain.PermSSHAdmin)
		}
		user = uuid.NullUUID{UUID: p.UserID, Valid: true}
	}
	if f.NodeID != "" {
		id, err := uuid.Parse(f.NodeID)
		if err != nil {
			return nil, 0, domain.Invalid("node", "must be a node id")
		}
		node = uuid.NullUUID{UUID: id, Valid: true}
	}
	var state *string
	switch f.State {
	case "":
	case "active", "expired", "revoked":
		state = &f.State
	default:
		return nil, 0, domain.Invalid("state", "must be one of active, expired, revoked")
	}
	now := s.now()
	total, err := s.q.CountSSHCertificates(ctx, s.st.Pool, store.CountSSHCertificatesParams{OrganizationID: p.OrgID, UserID: user, NodeID: node, State: state, Now: now})
	if err != nil {
		return nil, 0, fmt.Errorf("count certificates: %w", err)
	}
	rows, err := s.q.ListSSHCertificates(ctx, s.st.Pool, store.ListSSHCertificatesParams{OrganizationID: p.OrgID, UserID: user, NodeID: node, State: state, Now: now, Lim: page.Limit, Off: page.Offset()})
	if err != nil {
		return nil, 0, fmt.Errorf("list certificates: %w", err)
	}
	out := make([]Certificate, len(rows))
	for i, r := range rows {
		out[i] = s.certView(store.GetSSHCertificateRow(r))
	}
	return out, total, nil
}

// getVisible loads a certificate the caller may see. The permission comes
// first, then ownership: ssh:admin sees all, ssh:sign the caller's own
// (anything else is not found); without either (an API token of the owner
// lacking those scopes) the caller sees none.
func (s *Service) getVisible(ctx context.Context, p *domain.Principal, id uuid.UUID) (store.GetSSHCertificateRow, error) {
	if !p.Can(domain.PermSSHAdmin) {
		if err := need(p, domain.PermSSHSign); err != nil {
			return store.GetSSHCertificateRow{}, err
		}
	}
	r, err := s.q.GetSSHCertificate(ctx, s.st.Pool, store.GetSSHCertificateParams{OrganizationID: p.OrgID, ID: id})
	if store.IsNoRows(err) {
		return r, domain.NotFound("certificate")
	}
	if err != nil {
		return r, fmt.Errorf("get certificate %s: %w", id, err)
	}
	if p.Can(domain.PermSSHAdmin) || (r.UserID.Valid && r.UserID.UUID == p.UserID) {
		return r, nil
	}
	return r, domain.NotFound("certificate")
}

// GetCertificate returns one certificate (its owner with ssh:sign, or
// ssh:admin).
func (s *Service) GetCertificate(ctx context.Context, p *domain.Principal, id uuid.UUID) (Certificate, error) {
	r, err := s.getVisible(ctx, p, id)
	if err != nil {
		return Certificate{}, err
	}
	return s.certView(r), nil
}

// RevokeCertificate revokes a certificate (its owner with ssh:sign, or
// ssh:admin): it
// enters the organization's KRL until it expires.
func (s *Service) RevokeCertificate(ctx context.Context, p *domain.Principal, id uuid.UUID) (Certificate, error) {
	r, err := s.getVisible(ctx, p, id)
	if err != nil {
		return Certificate{}, err
	}
	if r.RevokedAt != nil {
		return Certificate{}, domain.Conflict("certificate is already revoked")
	}
	err = s.st.InTx(ctx, func(tx pgx.Tx) error {
		if _, err := s.q.RevokeSSHCertificate(ctx, tx, store.RevokeSSHCertificateParams{OrganizationID: p.OrgID, ID: id}); err != nil {
			if store.IsNoRows(err) {
				return domain.Conflict("certificate is already revoked")
			}
			return fmt.Errorf("revoke certificate %s: %w", id, err)
		}
		if _, err := s.q.BumpSSHKRLVersion(ctx, tx, p.OrgID); err != nil {
			return fmt.Errorf("revoke certificate %s: %w", id, err)
		}
		return nil
	})
	if err != nil {
		return Certificate{}, err
	}
	return s.GetCertificate(ctx, p, id)
}
