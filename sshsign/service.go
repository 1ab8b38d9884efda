// Package sshsign is the SSH certificate authority service: it keeps each
// organization's CA keys (sealed by sshca.Vault), signing policy, issued
// certificates and revocations in Postgres, and signs through the ssh_sign
// River job. The API validates a request, inserts the job and waits for the
// certificate, which the worker records before it answers.
package sshsign

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"golang.org/x/crypto/ssh"

	"github.com/shardform/shardform/domain"
	"github.com/shardform/shardform/internal/batch"
	"github.com/shardform/shardform/sshca"
	"github.com/shardform/shardform/store"
)

// CA key statuses.
const (
	StatusActive  = "active"
	StatusRetired = "retired"
)

// Queue inserts signing jobs and reads their state (river.Client does).
type Queue interface {
	InsertManyTx(ctx context.Context, tx pgx.Tx, params []river.InsertManyParams) ([]*rivertype.JobInsertResult, error)
	JobGet(ctx context.Context, id int64) (*rivertype.JobRow, error)
}

// Options tune the service.
type Options struct {
	// SignTimeout bounds how long the API waits for the worker (default 10 s).
	SignTimeout time.Duration
	// Now is the clock (default time.Now). Request deadlines (a job's
	// NotAfter) are times on it; how long the API waits is real time.
	Now func() time.Time
	// Context bounds the service's background work, the shared listener
	// connection: it closes when Context ends (pass the server's or the
	// worker's lifetime). Close ends it as well. Default: until Close.
	Context context.Context
	// Logger receives what the service cannot return to a caller: a failed
	// notification, a listener that cannot connect (default: discarded).
	Logger *slog.Logger
	// Observe, when set, is told of every signing request that reached the
	// queue: its kind ("user" or "host"), how long it took from the request
	// to the answer, and its error (nil: a certificate). The API's latency
	// histogram (jobmetrics.SignLatency).
	Observe func(kind string, took time.Duration, err error)
}

// Service is the SSH CA service. It is safe for concurrent use.
type Service struct {
	st      *store.Store
	q       *store.Queries
	vault   *sshca.Vault
	queue   Queue
	now     func() time.Time
	timeout time.Duration
	log     *slog.Logger
	onSign  func(kind string, took time.Duration, err error) // Options.Observe
	// life is the service's lifetime (Options.Context); stop ends it, and
	// background counts the goroutines that run under it.
	life       context.Context
	stop       context.CancelFunc
	background sync.WaitGroup
	// validator signs with a throwaway key: it runs sshca's validation and
	// policy checks in the API process before a job is queued.
	validator *sshca.Authority

	mu          sync.Mutex
	authorities map[uuid.UUID]*sshca.Authority // opened CA keys by id

	cache   caCache // policies and signing keys by organization
	serials serials // serials taken from the sequence, not yet used
	waiters waiters // requests waiting for their job, and the listener

	inserts *batch.Combiner[river.JobArgs, int64]     // signing jobs to insert
	records *batch.Combiner[certRecord, recordResult] // certificates to record

	// beforeRecord, when set (by tests only), runs between signing and
	// recording a user certificate: a failure there is a worker dying with
	// a signed, unrecorded certificate.
	beforeRecord func(context.Context) error
}

// New builds the service.
func New(st *store.Store, vault *sshca.Vault, opts Options) (*Service, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.SignTimeout == 0 {
		opts.SignTimeout = 10 * time.Second
	}
	if opts.Context == nil {
		opts.Context = context.Background()
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	_, throwaway, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("ssh service: %w", err)
	}
	validator, err := sshca.NewAuthority(throwaway, opts.Now)
	if err != nil {
		return nil, fmt.Errorf("ssh service: %w", err)
	}
	life, stop := context.WithCancel(opts.Context)
	s := &Service{
		st: st, q: st.Q, vault: vault, now: opts.Now, timeout: opts.SignTimeout, log: opts.Logger, onSign: opts.Observe, life: life, stop: stop,
		validator: validator, authorities: map[uuid.UUID]*sshca.Authority{},
		cache: caCache{entries: map[uuid.UUID]caState{}}, waiters: newWaiters(),
	}
	s.inserts = batch.New(maxBatch, s.insertJobs)
	s.records = batch.New(maxBatch, s.recordCertificates)
	return s, nil
}

// maxBatch is the most job inserts or certificate records combined into
// one statement.
const maxBatch = 128

// Close ends the service's background work (the shared listener) and waits
// for it. Requests still waiting fall back to polling.
func (s *Service) Close() {
	// A listener starts only under waiters.mu, after checking s.life: once
	// it is cancelled under that lock, no new one can start.
	s.waiters.mu.Lock()
	s.stop()
	s.waiters.mu.Unlock()
	s.background.Wait()
}

// observe tells Options.Observe of one signing.
func (s *Service) observe(kind string, took time.Duration, err error) {
	if s.onSign != nil {
		s.onSign(kind, took, err)
	}
}

// UseQueue sets the job queue (the River client, built after its workers).
func (s *Service) UseQueue(q Queue) { s.queue = q }

func need(p *domain.Principal, perm domain.Permission) error {
	if !p.HasOrg {
		return domain.Forbidden("you belong to no organization")
	}
	if !p.Can(perm) {
		return domain.Forbidden("missing permission %s", perm)
	}
	return nil
}

// ---- policy ----

// policy returns the organization's policy, or the default one, and its
// version (0 for the default policy).
func (s *Service) policy(ctx context.Context, db store.DBTX, org uuid.UUID) (sshca.Policy, int64, error) {
	st, err := s.q.GetSSHSettings(ctx, db, org)
	if store.IsNoRows(err) || (err == nil && len(st.Policy) == 0) {
		return sshca.DefaultPolicy(), st.PolicyVersion, nil
	}
	if err != nil {
		return sshca.Policy{}, 0, fmt.Errorf("load SSH policy: %w", err)
	}
	var p sshca.Policy
	if err := json.Unmarshal(st.Policy, &p); err != nil {
		return sshca.Policy{}, 0, fmt.Errorf("load SSH policy: %w", err)
	}
	// A policy stored before the validity bounds may allow more.
	return p.Bounded(), st.PolicyVersion, nil
}

// GetPolicy returns the organization's signing policy (ssh:admin).
func (s *Service) GetPolicy(ctx context.Context, p *domain.Principal) (sshca.Policy, error) {
	if err := need(p, domain.PermSSHAdmin); err != nil {
		return sshca.Policy{}, err
	}
	pol, _, err := s.policy(ctx, s.st.Pool, p.OrgID)
	return pol, err
}

// SetPolicy replaces the organization's signing policy (ssh:admin).
func (s *Service) SetPolicy(ctx context.Context, p *domain.Principal, pol sshca.Policy) (sshca.Policy, error) {
	if err := need(p, domain.PermSSHAdmin); err != nil {
		return sshca.Policy{}, err
	}
	if pol.AllowedPrincipals == nil {
		pol.AllowedPrincipals = []string{}
	}
	if pol.Extensions == nil {
		pol.Extensions = []string{}
	}
	if err := pol.Validate(); err != nil {
		return sshca.Policy{}, err
	}
	b, err := json.Marshal(pol)
	if err != nil {
		return sshca.Policy{}, fmt.Errorf("store SSH policy: %w", err)
	}
	err = s.st.InTx(ctx, func(tx pgx.Tx) error {
		if err := s.q.SetSSHPolicy(ctx, tx, store.SetSSHPolicyParams{OrganizationID: p.OrgID, Policy: b}); err != nil {
			return fmt.Errorf("store SSH policy: %w", err)
		}
		return s.changedCA(ctx, tx, p.OrgID)
	})
	if err != nil {
		return sshca.Policy{}, err
	}
	s.invalidate(p.OrgID) // again, now that the change is visible
	return pol, nil
}

// ---- CA keys ----

// CAKey is a CA key as the API shows it (never its private half).
type CAKey struct {
	ID          uuid.UUID  `json:"id"`
	Algorithm   string     `json:"algorithm"`
	PublicKey   string     `json:"public_key"`
	Fingerprint string     `json:"fingerprint"`
	Status      string     `json:"status"`
	Signing     bool       `json:"signing"` // the key that signs new certificates
	CreatedAt   time.Time  `json:"created_at"`
	RetiredAt   *time.Time `json:"retired_at"`
}

// markSigning marks the signing key among keys listed newest first: the
// first active one.
func markSigning(keys []CAKey) []CAKey {
	for i := range keys {
		if keys[i].Status == StatusActive {
			keys[i].Signing = true
			break
		}
	}
	return keys
}

func keyView(k store.SshCaKey, signing bool) CAKey {
	return CAKey{ID: k.ID, Algorithm: k.Algorithm, PublicKey: k.PublicKey, Fingerprint: k.Fingerprint,
		Status: k.Status, Signing: signing, CreatedAt: k.CreatedAt, RetiredAt: k.RetiredAt}
}

// signingKey returns the organization's signing key, creating its first
// (Ed25519) key if it has none.
func (s *Service) signingKey(ctx context.Context, org uuid.UUID) (store.SshCaKey, error) {
	k, err := s.q.GetSigningSSHCAKey(ctx, s.st.Pool, org)
	if err == nil {
		return k, nil
	}
	if !store.IsNoRows(err) {
		return k, fmt.Errorf("load signing CA key: %w", err)
	}
	err = s.withCALock(ctx, org, func(tx pgx.Tx) error {
		var err error
		k, err = s.q.GetSigningSSHCAKey(ctx, tx, org)
		if store.IsNoRows(err) {
			k, err = s.generateKey(ctx, tx, org, sshca.Ed25519)
		}
		return err
	})
	return k, err
}

// withCALock runs fn in a transaction holding the organization's CA lock.
// Whatever fn changes, the organization's cached CA state is dropped here
// and, when the transaction commits, in the other processes.
func (s *Service) withCALock(ctx context.Context, org uuid.UUID, fn func(tx pgx.Tx) error) error {
	err := s.st.InTx(ctx, func(tx pgx.Tx) error {
		if err := s.q.EnsureSSHSettings(ctx, tx, org); err != nil {
			return fmt.Errorf("lock CA of %s: %w", org, err)
		}
		if _, err := s.q.LockSSHSettings(ctx, tx, org); err != nil {
			return fmt.Errorf("lock CA of %s: %w", org, err)
		}
		if err := fn(tx); err != nil {
			return err
		}
		return s.changedCA(ctx, tx, org)
	})
	s.invalidate(org) // again, now that the change is visible
	return err
}

func (s *Service) generateKey(ctx context.Context, tx pgx.Tx, org uuid.UUID, alg sshca.KeyAlgorithm) (store.SshCaKey, error) {
	id := uuid.New()
	key, err := s.vault.Generate(id.String(), alg)
	if err != nil {
		return store.SshCaKey{}, err
	}
	row, err := s.q.InsertSSHCAKey(ctx, tx, store.InsertSSHCAKeyParams{
		ID: id, OrganizationID: org, Algorithm: string(key.Algorithm), PublicKey: key.PublicKey,
		Fingerprint: key.Fingerprint, SealedPrivateKey: key.SealedPrivateKey,
	})
	if err != nil {
		return store.SshCaKey{}, fmt.Errorf("store CA key: %w", err)
	}
	return row, nil
}

// authority returns the opened user CA key, cached by id (keys never change).
func (s *Service) authority(k store.SshCaKey) (*sshca.Authority, error) {
	return s.open(k.ID, &sshca.CAKey{ID: k.ID.String(), Algorithm: sshca.KeyAlgorithm(k.Algorithm),
		PublicKey: k.PublicKey, Fingerprint: k.Fingerprint, SealedPrivateKey: k.SealedPrivateKey})
}

// open unseals a CA key (user or host: their ids never collide) once and
// caches its Authority by id.
func (s *Service) open(id uuid.UUID, k *sshca.CAKey) (*sshca.Authority, error) {
	s.mu.Lock()
	a, ok := s.authorities[id]
	s.mu.Unlock()
	if ok {
		return a, nil
	}
	signer, err := s.vault.Open(k)
	if err != nil {
		return nil, err
	}
	a, err = sshca.NewAuthority(signer, s.now)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.authorities[id] = a
	s.mu.Unlock()
	return a, nil
}

// ListCAKeys lists the organization's CA keys, newest first (ssh:admin).
func (s *Service) ListCAKeys(ctx context.Context, p *domain.Principal) ([]CAKey, error) {
	if err := need(p, domain.PermSSHAdmin); err != nil {
		return nil, err
	}
	if _, err := s.signingKey(ctx, p.OrgID); err != nil {
		return nil, err
	}
	rows, err := s.q.ListSSHCAKeys(ctx, s.st.Pool, p.OrgID)
	if err != nil {
		return nil, fmt.Errorf("list CA keys: %w", err)
	}
	out := make([]CAKey, len(rows))
	for i, k := range rows {
		out[i] = keyView(k, false)
	}
	return markSigning(out), nil
}

// GenerateCAKey makes a new CA key of the algorithm ("" means Ed25519). It
// becomes the signing key; the previous keys stay trusted until retired.
func (s *Service) GenerateCAKey(ctx context.Context, p *domain.Principal, alg string) (CAKey, error) {
	if err := need(p, domain.PermSSHAdmin); err != nil {
		return CAKey{}, err
	}
	var out store.SshCaKey
	err := s.withCALock(ctx, p.OrgID, func(tx pgx.Tx) error {
		var err error
		out, err = s.generateKey(ctx, tx, p.OrgID, sshca.KeyAlgorithm(alg))
		return err
	})
	if err != nil {
		return CAKey{}, err
	}
	return keyView(out, true), nil
}

// RotateCAKey makes a new signing key of the current key's algorithm (or
// alg, if given). The old key keeps verifying its certificates until an admin
// retires it or its last certificate expires.
func (s *Service) RotateCAKey(ctx context.Context, p *domain.Principal, alg string) (CAKey, error) {
	if err := need(p, domain.PermSSHAdmin); err != nil {
		return CAKey{}, err
	}
	var out store.SshCaKey
	err := s.withCALock(ctx, p.OrgID, func(tx pgx.Tx) error {
		if alg == "" {
			cur, err := s.q.GetSigningSSHCAKey(ctx, tx, p.OrgID)
			switch {
			case err == nil:
				alg = cur.Algorithm
			case !store.IsNoRows(err):
				return fmt.Errorf("rotate CA key: %w", err)
			}
		}
		var err error
		out, err = s.generateKey(ctx, tx, p.OrgID, sshca.KeyAlgorithm(alg))
		return err
	})
	if err != nil {
		return CAKey{}, err
	}
	return keyView(out, true), nil
}

// RetireCAKey stops trusting a CA key: it leaves the ca-public-key file, so
// nodes refuse its certificates. The signing key cannot be retired (rotate
// first).
func (s *Service) RetireCAKey(ctx context.Context, p *domain.Principal, id uuid.UUID) (CAKey, error) {
	if err := need(p, domain.PermSSHAdmin); err != nil {
		return CAKey{}, err
	}
	var out store.SshCaKey
	err := s.withCALock(ctx, p.OrgID, func(tx pgx.Tx) error {
		k, err := s.q.GetSSHCAKey(ctx, tx, store.GetSSHCAKeyParams{OrganizationID: p.OrgID, ID: id})
		if store.IsNoRows(err) {
			return domain.NotFound("CA key")
		}
		if err != nil {
			return fmt.Errorf("retire CA key %s: %w", id, err)
		}
		if k.Status == StatusRetired {
			return domain.Conflict("CA key is already retired")
		}
		cur, err := s.q.GetSigningSSHCAKey(ctx, tx, p.OrgID)
		if err != nil {
			return fmt.Errorf("retire CA key %s: %w", id, err)
		}
		if cur.ID == id {
			return domain.Conflict("this is the signing key: rotate first, then retire it")
		}
		if out, err = s.q.RetireSSHCAKey(ctx, tx, store.RetireSSHCAKeyParams{OrganizationID: p.OrgID, ID: id}); err != nil {
			return fmt.Errorf("retire CA key %s: %w", id, err)
		}
		if _, err := s.q.BumpSSHKRLVersion(ctx, tx, p.OrgID); err != nil {
			return fmt.Errorf("retire CA key %s: %w", id, err)
		}
		return nil
	})
	if err != nil {
		return CAKey{}, err
	}
	return keyView(out, false), nil
}

// ---- public files ----

// organization checks that the organization exists (public endpoints).
func (s *Service) organization(ctx context.Context, org uuid.UUID) error {
	ok, err := s.q.SSHOrganizationExists(ctx, s.st.Pool, org)
	if err != nil {
		return fmt.Errorf("look up organization: %w", err)
	}
	if !ok {
		return domain.NotFound("organization")
	}
	return nil
}

// TrustedCAKeys returns every CA public key nodes of the organization should
// trust, in authorized_keys form, one per line, the signing key first: the
// content of sshd's TrustedUserCAKeys file. Public.
func (s *Service) TrustedCAKeys(ctx context.Context, org uuid.UUID) (string, error) {
	if err := s.organization(ctx, org); err != nil {
		return "", err
	}
	if _, err := s.signingKey(ctx, org); err != nil {
		return "", err
	}
	rows, err := s.q.ListTrustedSSHCAKeys(ctx, s.st.Pool, store.ListTrustedSSHCAKeysParams{OrganizationID: org, Now: s.now()})
	if err != nil {
		return "", fmt.Errorf("list trusted CA keys: %w", err)
	}
	var b strings.Builder
	for _, k := range rows {
		b.WriteString(k.PublicKey)
		b.WriteByte('\n')
	}
	return b.String(), nil
}

// KRL returns the organization's Key Revocation List in OpenSSH's binary
// format: every revoked certificate of a trusted CA key, unless its record
// says it has expired (a record whose end is not a plausible time keeps it
// listed). Public.
func (s *Service) KRL(ctx context.Context, org uuid.UUID) ([]byte, error) {
	if err := s.organization(ctx, org); err != nil {
		return nil, err
	}
	now := s.now()
	var version int64
	st, err := s.q.GetSSHSettings(ctx, s.st.Pool, org)
	switch {
	case err == nil:
		version = st.KrlVersion
	case !store.IsNoRows(err):
		return nil, fmt.Errorf("KRL: %w", err)
	}
	rows, err := s.q.ListRevokedSSHSerials(ctx, s.st.Pool, store.ListRevokedSSHSerialsParams{OrganizationID: org, Now: now})
	if err != nil {
		return nil, fmt.Errorf("KRL: %w", err)
	}
	return buildKRL(version, now, "shardform organization "+org.String(), rows)
}

// HostKRL is the organization's host key revocation list (ssh's
// RevokedHostKeys): the host certificates of deleted nodes, until they
// expire, so a deleted node's host key is no longer trusted. Public.
func (s *Service) HostKRL(ctx context.Context, org uuid.UUID) ([]byte, error) {
	if err := s.organization(ctx, org); err != nil {
		return nil, err
	}
	version, err := s.q.LatestSSHHostRevocation(ctx, s.st.Pool, org)
	if err != nil {
		return nil, fmt.Errorf("host KRL: %w", err)
	}
	now := s.now()
	rows, err := s.q.ListRevokedSSHHostSerials(ctx, s.st.Pool, store.ListRevokedSSHHostSerialsParams{OrganizationID: org, Now: now})
	if err != nil {
		return nil, fmt.Errorf("host KRL: %w", err)
	}
	list := make([]store.ListRevokedSSHSerialsRow, len(rows))
	for i, r := range rows {
		list[i] = store.ListRevokedSSHSerialsRow(r)
	}
	return buildKRL(version, now, "shardform organization "+org.String()+" host certificates", list)
}

// buildKRL is a KRL of the revoked serials, grouped by their CA key.
func buildKRL(version int64, now time.Time, comment string, rows []store.ListRevokedSSHSerialsRow) ([]byte, error) {
	krl := &sshca.KRL{Version: uint64(version), GeneratedAt: now, Comment: comment}
	byKey := map[string]int{}
	for _, r := range rows {
		i, ok := byKey[r.PublicKey]
		if !ok {
			pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(r.PublicKey))
			if err != nil {
				return nil, fmt.Errorf("KRL: CA key: %w", err)
			}
			krl.Revoked = append(krl.Revoked, sshca.RevokedSerials{CA: pub})
			i = len(krl.Revoked) - 1
			byKey[r.PublicKey] = i
		}
		krl.Revoked[i].Serials = append(krl.Revoked[i].Serials, uint64(r.Serial))
	}
	return krl.MarshalBinary()
}
