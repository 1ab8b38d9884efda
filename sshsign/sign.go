package sshsign

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

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
		// shardform users have no login name of their own yet: only the
		// policy's principals may be requested.
		User: a.User, OrganizationID: a.OrganizationID.String(), Serial: serial,
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
		OrganizationID: p.OrgID, UserID: p.UserID, User: p.Email, PublicKey: req.PublicKey,
		Principals: req.Principals, ValidityHours: req.ValidityHours, SourceAddress: req.SourceAddress,
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
	policy, err := s.policy(ctx, s.st.Pool, p.OrgID)
	if err != nil {
		return Signed{}, err
	}
	if _, err := s.validator.Sign(policy, args.request(1)); err != nil {
		return Signed{}, err
	}
	if _, err := s.signingKey(ctx, p.OrgID); err != nil {
		return Signed{}, err
	}
	deadline := time.Now().Add(s.timeout)
	args.NotAfter = deadline
	res, err := s.queue.Insert(ctx, args, nil)
	if err != nil {
		return Signed{}, fmt.Errorf("sign certificate: enqueue: %w", err)
	}
	return s.wait(ctx, p.OrgID, res.Job.ID, deadline)
}

// wait polls for the certificate of job id until the deadline. Several API
// processes may run: the database is the only thing they share.
func (s *Service) wait(ctx context.Context, org uuid.UUID, jobID int64, deadline time.Time) (Signed, error) {
	delay := time.Millisecond
	for i := 0; ; i++ {
		row, err := s.q.GetSSHCertificateByJob(ctx, s.st.Pool, store.GetSSHCertificateByJobParams{OrganizationID: org, JobID: pgtype.Int8{Int64: jobID, Valid: true}})
		if err == nil {
			return Signed{ID: row.ID, Certificate: row.Certificate, SerialNumber: uint64(row.Serial), KeyID: row.KeyID,
				ValidAfter: row.ValidAfter, ValidBefore: row.ValidBefore, Principals: row.Principals, CAFingerprint: row.CaFingerprint}, nil
		}
		if !store.IsNoRows(err) {
			return Signed{}, fmt.Errorf("sign certificate: %w", err)
		}
		if i%4 == 3 {
			job, err := s.queue.JobGet(ctx, jobID)
			if err != nil {
				return Signed{}, fmt.Errorf("sign certificate: job %d: %w", jobID, err)
			}
			if job.State == rivertype.JobStateCancelled || job.State == rivertype.JobStateDiscarded {
				if n := len(job.Errors); n > 0 {
					if derr, ok := parseFailure(job.Errors[n-1].Error); ok {
						return Signed{}, derr
					}
					return Signed{}, fmt.Errorf("sign certificate: job %d %s: %s", jobID, job.State, job.Errors[n-1].Error)
				}
				return Signed{}, fmt.Errorf("sign certificate: job %d %s", jobID, job.State)
			}
		}
		if time.Now().After(deadline) {
			return Signed{}, fmt.Errorf("sign certificate: job %d: %w", jobID, errTimeout)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return Signed{}, ctx.Err()
		case <-t.C:
		}
		delay = min(delay+time.Millisecond, 10*time.Millisecond)
	}
}

// RunSign is the ssh_sign worker: it validates the request again (the
// policy may have changed since), allocates a serial, signs with the
// organization's signing key and records the certificate in the transaction
// that completes the job, so no certificate is handed out unrecorded.
// Refused requests cancel the job with the reason for the waiting API.
func (s *Service) RunSign(ctx context.Context, j Job) error {
	a := j.Args
	if !a.NotAfter.IsZero() && s.now().After(a.NotAfter) {
		return river.JobCancel(errors.New("the request expired before a worker signed it"))
	}
	cancel := func(err error) error {
		if f, ok := failureOf(err); ok {
			return river.JobCancel(f)
		}
		return err
	}
	policy, err := s.policy(ctx, s.st.Pool, a.OrganizationID)
	if err != nil {
		return err
	}
	// Validate before a serial is spent.
	if _, err := s.validator.Sign(policy, a.request(1)); err != nil {
		return cancel(err)
	}
	var (
		key    store.SshCaKey
		serial int64
	)
	for attempt := 0; ; attempt++ {
		if key, err = s.signingKey(ctx, a.OrganizationID); err != nil {
			return err
		}
		serial, err = s.allocateSerial(ctx, a.OrganizationID, key.ID)
		if err == nil {
			break
		}
		if !store.IsNoRows(err) || attempt > 2 {
			return fmt.Errorf("allocate serial: %w", err)
		}
		// The key was retired meanwhile: take the new signing key.
	}
	auth, err := s.authority(key)
	if err != nil {
		return err
	}
	cert, err := auth.Sign(policy, a.request(uint64(serial)))
	if err != nil {
		return cancel(err)
	}
	var node uuid.NullUUID
	if a.NodeID != nil {
		node = uuid.NullUUID{UUID: *a.NodeID, Valid: true}
	}
	return s.st.InTx(ctx, func(tx pgx.Tx) error {
		_, err := s.q.InsertSSHCertificate(ctx, tx, store.InsertSSHCertificateParams{
			OrganizationID: a.OrganizationID, CaKeyID: key.ID, UserID: uuid.NullUUID{UUID: a.UserID, Valid: a.UserID != uuid.Nil},
			NodeID: node, Serial: serial, KeyID: cert.KeyID, Principals: cert.Principals, KeyType: cert.KeyType,
			KeyFingerprint: cert.KeyFingerprint, Extensions: cert.Extensions, SourceAddress: cert.SourceAddress,
			ValidAfter: cert.ValidAfter, ValidBefore: cert.ValidBefore, Certificate: cert.AuthorizedKey,
			JobID: pgtype.Int8{Int64: j.ID, Valid: j.ID != 0},
		})
		if err != nil {
			return fmt.Errorf("record certificate serial %d: %w", serial, err)
		}
		if j.Complete != nil {
			if err := j.Complete(ctx, tx); err != nil {
				return fmt.Errorf("complete ssh_sign job %d: %w", j.ID, err)
			}
		}
		return nil
	})
}

// allocateSerial hands out the key's next serial in a transaction of its
// own, so a number is never handed out twice. Its commit does not wait for
// the disk: every allocation of a key queues on the key's row lock, and a
// flush per serial would cap signing at one certificate per fsync. That is
// safe: the certificate's own commit is synchronous and comes later in the
// WAL, so it flushes this one too; a serial lost in a crash belonged to a
// certificate that was never recorded nor handed out.
func (s *Service) allocateSerial(ctx context.Context, org, keyID uuid.UUID) (int64, error) {
	var serial int64
	err := s.st.InTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL synchronous_commit TO OFF"); err != nil {
			return err
		}
		var err error
		serial, err = s.q.AllocateSSHSerial(ctx, tx, store.AllocateSSHSerialParams{OrganizationID: org, ID: keyID})
		return err
	})
	return serial, err
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

// getVisible loads a certificate the caller may see: ssh:admin sees all,
// others their own (anything else is not found).
func (s *Service) getVisible(ctx context.Context, p *domain.Principal, id uuid.UUID) (store.GetSSHCertificateRow, error) {
	if !p.HasOrg {
		return store.GetSSHCertificateRow{}, domain.Forbidden("you belong to no organization")
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

// GetCertificate returns one certificate (its owner or ssh:admin).
func (s *Service) GetCertificate(ctx context.Context, p *domain.Principal, id uuid.UUID) (Certificate, error) {
	r, err := s.getVisible(ctx, p, id)
	if err != nil {
		return Certificate{}, err
	}
	return s.certView(r), nil
}

// RevokeCertificate revokes a certificate (its owner or ssh:admin): it
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

// IsTimeout reports whether err means the worker did not answer in time.
func IsTimeout(err error) bool { return errors.Is(err, errTimeout) }
