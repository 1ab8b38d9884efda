package sshsign

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
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

// KindSignHost is the job kind that signs one host certificate.
const KindSignHost = "ssh_sign_host"

// HostSignArgs is one host certificate request, as the API validated it.
type HostSignArgs struct {
	OrganizationID uuid.UUID `json:"organization_id"`
	UserID         uuid.UUID `json:"user_id"` // the admin who asked
	NodeID         uuid.UUID `json:"node_id"`
	NodeName       string    `json:"node_name"` // named in the key id
	PublicKey      string    `json:"public_key"`
	Principals     []string  `json:"principals"`
	ValidityHours  *int      `json:"validity_hours,omitempty"`
	// NotAfter is when the API stops waiting (see SignArgs.NotAfter).
	NotAfter time.Time `json:"not_after"`
	// Reply names the waiting API request (see SignArgs.Reply).
	Reply string `json:"reply,omitempty"`
	// Audit is the API request's audit entry, written with the record.
	Audit *AuditArgs `json:"audit,omitempty"`
}

// Kind implements river.JobArgs.
func (HostSignArgs) Kind() string { return KindSignHost }

// InsertOpts puts the job on the ssh queue, like ssh_sign.
func (HostSignArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueSSH, MaxAttempts: 3}
}

// HostJob is one ssh_sign_host job handed to RunSignHost by the worker.
type HostJob struct {
	ID      int64
	Attempt int // see Job.Attempt
	Args    HostSignArgs
}

// HostSignRequest is the body of POST /v1/ssh/host-certificate.
type HostSignRequest struct {
	PublicKey     string  `json:"public_key"`
	NodeID        *string `json:"node_id"`
	ValidityHours *int    `json:"validity_hours"`
	// Audit is the API request's audit entry (see SignRequest.Audit).
	Audit *audit.Entry `json:"-"`
}

// HostSigned is the answer to a host signing request.
type HostSigned struct {
	ID            uuid.UUID `json:"id"`
	NodeID        uuid.UUID `json:"node_id"`
	Certificate   string    `json:"certificate"`
	SerialNumber  uint64    `json:"serial_number"`
	KeyID         string    `json:"key_id"`
	ValidAfter    time.Time `json:"valid_after"`
	ValidBefore   time.Time `json:"valid_before"`
	Principals    []string  `json:"principals"`
	CAFingerprint string    `json:"ca_fingerprint"`
}

// HostCertificate is an issued host certificate as the API lists it.
type HostCertificate struct {
	HostSigned
	UserID         *uuid.UUID `json:"user_id"`
	KeyType        string     `json:"key_type"`
	KeyFingerprint string     `json:"key_fingerprint"`
	CAKeyID        uuid.UUID  `json:"ca_key_id"`
	CreatedAt      time.Time  `json:"created_at"`
}

func (a HostSignArgs) request(serial uint64) sshca.HostRequest {
	return sshca.HostRequest{PublicKey: a.PublicKey, Principals: a.Principals, ValidityHours: a.ValidityHours,
		Host: a.NodeName, OrganizationID: a.OrganizationID.String(), Serial: serial}
}

// hostPrincipals are the names a node's host certificate is valid for: its
// name and its addresses.
func hostPrincipals(n store.GetSSHHostNodeRow) []string {
	var out []string
	for _, v := range append([]string{n.Name}, append(n.Fqdns, n.Ipv4, n.Ipv6)...) {
		if v = strings.TrimSpace(v); v != "" && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

// HostPrincipals are the principals a node's host certificate carries
// when signed now (its name, DNS names and addresses): an agent whose
// certificate names others (the node got a new address with a power
// cycle) renews it.
func (s *Service) HostPrincipals(ctx context.Context, org, nodeID uuid.UUID) ([]string, error) {
	node, err := s.q.GetSSHHostNode(ctx, s.st.Pool, store.GetSSHHostNodeParams{OrganizationID: org, ID: nodeID})
	if store.IsNoRows(err) {
		return nil, domain.NotFound("node")
	}
	if err != nil {
		return nil, fmt.Errorf("host principals of node %s: %w", nodeID, err)
	}
	return hostPrincipals(node), nil
}

// SignHost signs a node's host key with the organization's host CA
// (ssh:admin), through an ssh_sign_host job like Sign. The certificate's
// principals are the node's name, its DNS names (A and AAAA records), and
// its IPv4 and IPv6 address.
func (s *Service) SignHost(ctx context.Context, p *domain.Principal, req HostSignRequest) (HostSigned, error) {
	if err := need(p, domain.PermSSHAdmin); err != nil {
		return HostSigned{}, err
	}
	if s.queue == nil {
		return HostSigned{}, errors.New("sign host certificate: no job queue configured")
	}
	if req.NodeID == nil || *req.NodeID == "" {
		return HostSigned{}, domain.Invalid("node_id", "is required: the node whose host key is signed")
	}
	id, err := uuid.Parse(*req.NodeID)
	if err != nil {
		return HostSigned{}, domain.Invalid("node_id", "must be a node id (a UUID)")
	}
	return s.signHost(ctx, p.OrgID, p.UserID, id, req.PublicKey, req.ValidityHours, req.Audit)
}

// SignNodeHost signs one of a node's own host keys for the node's agent
// (authenticated by its agent token, so no person's permission is
// checked): the same job, principals and record as SignHost, without a
// user.
func (s *Service) SignNodeHost(ctx context.Context, org, nodeID uuid.UUID, publicKey string, validityHours *int) (HostSigned, error) {
	if s.queue == nil {
		return HostSigned{}, errors.New("sign host certificate: no job queue configured")
	}
	return s.signHost(ctx, org, uuid.Nil, nodeID, publicKey, validityHours, nil)
}

func (s *Service) signHost(ctx context.Context, org, userID, id uuid.UUID, publicKey string, validityHours *int, au *audit.Entry) (HostSigned, error) {
	node, err := s.q.GetSSHHostNode(ctx, s.st.Pool, store.GetSSHHostNodeParams{OrganizationID: org, ID: id})
	if store.IsNoRows(err) {
		return HostSigned{}, domain.NotFound("node")
	}
	if err != nil {
		return HostSigned{}, fmt.Errorf("sign host certificate: look up node: %w", err)
	}
	args := HostSignArgs{
		OrganizationID: org, UserID: userID, NodeID: id, NodeName: node.Name,
		PublicKey: publicKey, Principals: hostPrincipals(node), ValidityHours: validityHours, Audit: auditArgsOf(au),
	}
	if _, err := s.validator.SignHost(args.request(1)); err != nil {
		return HostSigned{}, err
	}
	if _, err := s.hostSigningKey(ctx, org); err != nil {
		return HostSigned{}, err
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
		return HostSigned{}, fmt.Errorf("sign host certificate: enqueue: %w", err)
	}
	signed, err := waitForJob(ctx, s, wt, jobID, start, func(ctx context.Context) (HostSigned, error) {
		row, err := s.q.GetSSHHostCertificateByJob(ctx, s.st.Pool, store.GetSSHHostCertificateByJobParams{
			OrganizationID: org, JobID: pgtype.Int8{Int64: jobID, Valid: true}})
		if err != nil {
			return HostSigned{}, err
		}
		return hostView(store.ListSSHHostCertificatesRow(row)).HostSigned, nil
	})
	s.observe("host", time.Since(start), err)
	return signed, err
}

// RunSignHost is the ssh_sign_host worker: like RunSign, it allocates a
// serial, signs, and records the certificate (with the API request's audit
// entry) before it answers; a later attempt of a job whose certificate is
// recorded answers with that one.
func (s *Service) RunSignHost(ctx context.Context, j HostJob) error {
	a := j.Args
	if j.Attempt > 1 && j.ID != 0 {
		// An earlier attempt recorded the certificate (see RunSign).
		_, err := s.q.GetSSHHostCertificateByJob(ctx, s.st.Pool, store.GetSSHHostCertificateByJobParams{
			OrganizationID: a.OrganizationID, JobID: pgtype.Int8{Int64: j.ID, Valid: true}})
		switch {
		case err == nil:
			s.answer(ctx, a.Reply, nil, nil)
			return nil
		case !store.IsNoRows(err):
			return fmt.Errorf("look up the host certificate of job %d: %w", j.ID, err)
		}
	}
	if !a.NotAfter.IsZero() && s.now().After(a.NotAfter) {
		return river.JobCancel(errors.New("the request expired before a worker signed it"))
	}
	cancel := func(err error) error {
		if f, ok := failureOf(err); ok {
			s.answer(ctx, a.Reply, nil, err)
			return river.JobCancel(f)
		}
		return err
	}
	if _, err := s.validator.SignHost(a.request(1)); err != nil {
		return cancel(err)
	}
	key, err := s.hostSigningKey(ctx, a.OrganizationID)
	if err != nil {
		return err
	}
	var serial int64
	err = s.st.InTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL synchronous_commit TO OFF"); err != nil {
			return err
		}
		var err error
		serial, err = s.q.AllocateSSHHostSerial(ctx, tx, store.AllocateSSHHostSerialParams{OrganizationID: a.OrganizationID, ID: key.ID})
		return err
	})
	if err != nil {
		return fmt.Errorf("allocate host serial: %w", err)
	}
	auth, err := s.hostAuthority(key)
	if err != nil {
		return err
	}
	cert, err := auth.SignHost(a.request(uint64(serial)))
	if err != nil {
		return cancel(err)
	}
	au := auditColumnsOf(a.Audit)
	_, err = s.q.InsertSSHHostCertificate(ctx, s.st.Pool, store.InsertSSHHostCertificateParams{
		OrganizationID: a.OrganizationID, CaKeyID: key.ID, NodeID: a.NodeID,
		UserID: uuid.NullUUID{UUID: a.UserID, Valid: a.UserID != uuid.Nil}, Serial: serial, KeyID: cert.KeyID,
		Principals: cert.Principals, KeyType: cert.KeyType, KeyFingerprint: cert.KeyFingerprint,
		ValidAfter: cert.ValidAfter, ValidBefore: cert.ValidBefore, Certificate: cert.AuthorizedKey,
		JobID:           pgtype.Int8{Int64: j.ID, Valid: j.ID != 0},
		AuditApiTokenID: au.AuditAPITokenID, AuditAction: au.AuditAction, AuditStatus: au.AuditStatus,
		AuditRequestID: au.AuditRequestID, AuditIp: au.AuditIP,
	})
	if err != nil {
		return fmt.Errorf("record host certificate serial %d: %w", serial, err)
	}
	// Committed: wake the waiting request, which reads the record.
	s.answer(ctx, a.Reply, nil, nil)
	return nil
}

// hostSigningKey returns the organization's signing host CA key (its
// newest active one), creating it (Ed25519) on first use.
func (s *Service) hostSigningKey(ctx context.Context, org uuid.UUID) (store.SshHostCaKey, error) {
	k, err := s.q.GetSigningSSHHostCAKey(ctx, s.st.Pool, org)
	if err == nil {
		return k, nil
	}
	if !store.IsNoRows(err) {
		return k, fmt.Errorf("load host CA key: %w", err)
	}
	err = s.withCALock(ctx, org, func(tx pgx.Tx) error {
		var err error
		k, err = s.q.GetSigningSSHHostCAKey(ctx, tx, org)
		if !store.IsNoRows(err) {
			return err
		}
		k, err = s.generateHostKey(ctx, tx, org, sshca.Ed25519)
		return err
	})
	return k, err
}

// generateHostKey makes and stores a new host CA key, which becomes the
// signing key (the caller holds the organization's CA lock).
func (s *Service) generateHostKey(ctx context.Context, tx pgx.Tx, org uuid.UUID, alg sshca.KeyAlgorithm) (store.SshHostCaKey, error) {
	id := uuid.New()
	key, err := s.vault.Generate(id.String(), alg)
	if err != nil {
		return store.SshHostCaKey{}, err
	}
	k, err := s.q.InsertSSHHostCAKey(ctx, tx, store.InsertSSHHostCAKeyParams{
		ID: id, OrganizationID: org, Algorithm: string(key.Algorithm), PublicKey: key.PublicKey,
		Fingerprint: key.Fingerprint, SealedPrivateKey: key.SealedPrivateKey,
	})
	if err != nil {
		return k, fmt.Errorf("store host CA key: %w", err)
	}
	return k, nil
}

func hostKeyView(k store.SshHostCaKey, signing bool) CAKey {
	return CAKey{ID: k.ID, Algorithm: k.Algorithm, PublicKey: k.PublicKey, Fingerprint: k.Fingerprint,
		Status: k.Status, Signing: signing, CreatedAt: k.CreatedAt, RetiredAt: k.RetiredAt}
}

// ListHostCAKeys lists the organization's host CA keys, newest first
// (ssh:admin).
func (s *Service) ListHostCAKeys(ctx context.Context, p *domain.Principal) ([]CAKey, error) {
	if err := need(p, domain.PermSSHAdmin); err != nil {
		return nil, err
	}
	if _, err := s.hostSigningKey(ctx, p.OrgID); err != nil {
		return nil, err
	}
	rows, err := s.q.ListSSHHostCAKeys(ctx, s.st.Pool, p.OrgID)
	if err != nil {
		return nil, fmt.Errorf("list host CA keys: %w", err)
	}
	out := make([]CAKey, len(rows))
	for i, k := range rows {
		out[i] = hostKeyView(k, false)
	}
	return markSigning(out), nil
}

// RotateHostCAKey makes a new host signing key of the current key's
// algorithm (or alg, if given). The old key stays in known-hosts, so hosts
// it certified stay trusted, until an admin retires it (ssh:admin).
func (s *Service) RotateHostCAKey(ctx context.Context, p *domain.Principal, alg string) (CAKey, error) {
	if err := need(p, domain.PermSSHAdmin); err != nil {
		return CAKey{}, err
	}
	var out store.SshHostCaKey
	err := s.withCALock(ctx, p.OrgID, func(tx pgx.Tx) error {
		if alg == "" {
			alg = string(sshca.Ed25519)
			cur, err := s.q.GetSigningSSHHostCAKey(ctx, tx, p.OrgID)
			switch {
			case err == nil:
				alg = cur.Algorithm
			case !store.IsNoRows(err):
				return fmt.Errorf("rotate host CA key: %w", err)
			}
		}
		var err error
		out, err = s.generateHostKey(ctx, tx, p.OrgID, sshca.KeyAlgorithm(alg))
		return err
	})
	if err != nil {
		return CAKey{}, err
	}
	return hostKeyView(out, true), nil
}

// RetireHostCAKey stops trusting a host CA key: it leaves known-hosts, so
// clients refuse the host certificates it signed. The signing key cannot be
// retired (rotate first) (ssh:admin).
func (s *Service) RetireHostCAKey(ctx context.Context, p *domain.Principal, id uuid.UUID) (CAKey, error) {
	if err := need(p, domain.PermSSHAdmin); err != nil {
		return CAKey{}, err
	}
	var out store.SshHostCaKey
	err := s.withCALock(ctx, p.OrgID, func(tx pgx.Tx) error {
		k, err := s.q.GetSSHHostCAKey(ctx, tx, store.GetSSHHostCAKeyParams{OrganizationID: p.OrgID, ID: id})
		if store.IsNoRows(err) {
			return domain.NotFound("host CA key")
		}
		if err != nil {
			return fmt.Errorf("retire host CA key %s: %w", id, err)
		}
		if k.Status == StatusRetired {
			return domain.Conflict("host CA key is already retired")
		}
		cur, err := s.q.GetSigningSSHHostCAKey(ctx, tx, p.OrgID)
		if err != nil {
			return fmt.Errorf("retire host CA key %s: %w", id, err)
		}
		if cur.ID == id {
			return domain.Conflict("this is the signing host CA key: rotate first, then retire it")
		}
		if out, err = s.q.RetireSSHHostCAKey(ctx, tx, store.RetireSSHHostCAKeyParams{OrganizationID: p.OrgID, ID: id}); err != nil {
			return fmt.Errorf("retire host CA key %s: %w", id, err)
		}
		return nil
	})
	if err != nil {
		return CAKey{}, err
	}
	return hostKeyView(out, false), nil
}

func (s *Service) hostAuthority(k store.SshHostCaKey) (*sshca.Authority, error) {
	return s.open(k.ID, &sshca.CAKey{ID: k.ID.String(), Algorithm: sshca.KeyAlgorithm(k.Algorithm),
		PublicKey: k.PublicKey, Fingerprint: k.Fingerprint, SealedPrivateKey: k.SealedPrivateKey})
}

// KnownHosts returns the known_hosts lines that make ssh trust host
// certificates of the organization's host CA: one
// "@cert-authority * <key>" line per active host CA key, the signing key
// first (created on first use). Public.
func (s *Service) KnownHosts(ctx context.Context, org uuid.UUID) (string, error) {
	if err := s.organization(ctx, org); err != nil {
		return "", err
	}
	if _, err := s.hostSigningKey(ctx, org); err != nil {
		return "", err
	}
	keys, err := s.q.ListSSHHostCAKeys(ctx, s.st.Pool, org)
	if err != nil {
		return "", fmt.Errorf("list host CA keys: %w", err)
	}
	var b strings.Builder
	for _, k := range keys {
		if k.Status != StatusActive {
			continue
		}
		fmt.Fprintf(&b, "@cert-authority * %s shardform-host-ca-%s\n", k.PublicKey, org)
	}
	return b.String(), nil
}

func hostView(r store.ListSSHHostCertificatesRow) HostCertificate {
	c := HostCertificate{
		HostSigned: HostSigned{ID: r.ID, NodeID: r.NodeID, Certificate: r.Certificate, SerialNumber: uint64(r.Serial),
			KeyID: r.KeyID, ValidAfter: r.ValidAfter, ValidBefore: r.ValidBefore, Principals: r.Principals,
			CAFingerprint: r.CaFingerprint},
		KeyType: r.KeyType, KeyFingerprint: r.KeyFingerprint, CAKeyID: r.CaKeyID, CreatedAt: r.CreatedAt,
	}
	if r.UserID.Valid {
		id := r.UserID.UUID
		c.UserID = &id
	}
	return c
}

// ListHostCertificates lists issued host certificates, newest first,
// optionally of one node (ssh:admin).
func (s *Service) ListHostCertificates(ctx context.Context, p *domain.Principal, nodeID string, page domain.Page) ([]HostCertificate, int64, error) {
	if err := need(p, domain.PermSSHAdmin); err != nil {
		return nil, 0, err
	}
	var node uuid.NullUUID
	if nodeID != "" {
		id, err := uuid.Parse(nodeID)
		if err != nil {
			return nil, 0, domain.Invalid("node", "must be a node id")
		}
		node = uuid.NullUUID{UUID: id, Valid: true}
	}
	total, err := s.q.CountSSHHostCertificates(ctx, s.st.Pool, store.CountSSHHostCertificatesParams{OrganizationID: p.OrgID, NodeID: node})
	if err != nil {
		return nil, 0, fmt.Errorf("count host certificates: %w", err)
	}
	rows, err := s.q.ListSSHHostCertificates(ctx, s.st.Pool, store.ListSSHHostCertificatesParams{OrganizationID: p.OrgID, NodeID: node, Lim: page.Limit, Off: page.Offset()})
	if err != nil {
		return nil, 0, fmt.Errorf("list host certificates: %w", err)
	}
	out := make([]HostCertificate, len(rows))
	for i, r := range rows {
		out[i] = hostView(r)
	}
	return out, total, nil
}
