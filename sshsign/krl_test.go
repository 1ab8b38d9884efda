package sshsign_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"golang.org/x/crypto/ssh"

	"github.com/shardform/shardform/domain"
	"github.com/shardform/shardform/internal/sshtest"
	"github.com/shardform/shardform/sshca"
	"github.com/shardform/shardform/sshsign"
)

// TestKRLListsEveryRevokedCertificate: a revoked certificate stays in the
// KRL, as real ssh-keygen -Q reads it, unless its record says plausibly
// that it has expired. Records whose end cannot be trusted (before the
// certificate's start, as a validity that overflowed a Go duration
// recorded it, or not a finite time) keep it listed: the certificate itself
// may be valid far longer.
func TestKRLListsEveryRevokedCertificate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// record rewrites the certificate's recorded validity (nil: as signed).
		record      string
		wantRevoked bool
	}{
		{"as signed", "", true},
		{"recorded end in 1734", "valid_before = '1734-01-01T00:00:00Z'", true},
		{"recorded end just before its start", "valid_before = valid_after", true},
		{"recorded end before the record", "valid_after = '1734-01-01T00:00:00Z', valid_before = created_at - interval '1 second'", true},
		{"recorded end -infinity", "valid_before = '-infinity'", true},
		{"recorded end infinity", "valid_before = 'infinity'", true},
		{"recorded end far in the future", "valid_before = '9999-12-31T00:00:00Z'", true},
		// Genuinely expired: issued two days ago for a day.
		{"expired", "created_at = now() - interval '2 days', valid_after = now() - interval '2 days', valid_before = now() - interval '1 day'", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			ctx := context.Background()
			// Another certificate, never revoked, keeps the KRL honest.
			for id := int64(1); id <= 2; id++ {
				if err := b.svc.RunSign(ctx, sshsign.Job{ID: id, Attempt: 1, Args: b.args()}); err != nil {
					t.Fatal(err)
				}
			}
			var certID uuid.UUID
			var text string
			if err := b.pool.QueryRow(ctx, "SELECT id, certificate FROM ssh_certificates WHERE job_id = 1").Scan(&certID, &text); err != nil {
				t.Fatal(err)
			}
			var keep string
			if err := b.pool.QueryRow(ctx, "SELECT certificate FROM ssh_certificates WHERE job_id = 2").Scan(&keep); err != nil {
				t.Fatal(err)
			}
			admin := &domain.Principal{OrgID: b.org, HasOrg: true, UserID: uuid.New(),
				Perms: domain.NewPermissionSet([]domain.Permission{domain.PermSSHAdmin})}
			if _, err := b.svc.RevokeCertificate(ctx, admin, certID); err != nil {
				t.Fatal(err)
			}
			if tt.record != "" {
				if _, err := b.pool.Exec(ctx, "UPDATE ssh_certificates SET "+tt.record+" WHERE id = $1", certID); err != nil {
					t.Fatal(err)
				}
			}
			krl, err := b.svc.KRL(ctx, b.org)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			krlPath := filepath.Join(dir, "krl")
			certPath := filepath.Join(dir, "cert.pub")
			keepPath := filepath.Join(dir, "keep.pub")
			for path, content := range map[string][]byte{krlPath: krl, certPath: []byte(text + "\n"), keepPath: []byte(keep + "\n")} {
				if err := os.WriteFile(path, content, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			out, code := sshtest.Run(t, "ssh-keygen", "-Q", "-f", krlPath, certPath)
			if revoked := code == 1 && strings.Contains(out, "REVOKED"); revoked != tt.wantRevoked {
				t.Errorf("ssh-keygen -Q of the revoked certificate: exit %d %q, want revoked %v", code, out, tt.wantRevoked)
			}
			if out, code := sshtest.Run(t, "ssh-keygen", "-Q", "-f", krlPath, keepPath); code != 0 || !strings.Contains(out, "ok") {
				t.Errorf("ssh-keygen -Q of the certificate never revoked: exit %d %q, want ok", code, out)
			}
		})
	}
}

// TestStoredUnboundedPolicy: a policy stored before the validity bounds
// (max_validity_hours 9223372036854775807 was taken) is applied within
// them: the overflowing request is refused naming validity_hours, nothing is
// signed, and the policy reads back bounded.
func TestStoredUnboundedPolicy(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	if _, err := b.pool.Exec(ctx, `INSERT INTO ssh_settings (organization_id, policy) VALUES ($1, $2)`, b.org,
		`{"allowed_principals": ["root"], "default_validity_hours": 8, "max_validity_hours": 9223372036854775807,
		  "allowed_key_types": ["ssh-ed25519"], "extensions": ["permit-pty"]}`); err != nil {
		t.Fatal(err)
	}
	args := b.args()
	hours := 2_562_048 // a Go duration of this many hours overflows
	args.ValidityHours = &hours
	err := b.svc.RunSign(ctx, sshsign.Job{ID: 1, Attempt: 1, Args: args})
	if err == nil || !strings.Contains(err.Error(), `"field":"validity_hours"`) || !strings.Contains(err.Error(), "at most 8760") {
		t.Errorf("RunSign: %v, want the request refused naming validity_hours", err)
	}
	if got := b.certificates(t); len(got) != 0 {
		t.Errorf("signed serials %v", got)
	}
	admin := &domain.Principal{OrgID: b.org, HasOrg: true, UserID: uuid.New(),
		Perms: domain.NewPermissionSet([]domain.Permission{domain.PermSSHAdmin})}
	pol, err := b.svc.GetPolicy(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	if pol.MaxValidityHours != 8760 || pol.DefaultValidityHours != 8 {
		t.Errorf("policy validity default %d max %d, want 8 and 8760", pol.DefaultValidityHours, pol.MaxValidityHours)
	}
	// Within the bound it signs, and the certificate ends where its record
	// says.
	hours = 8760
	if err := b.svc.RunSign(ctx, sshsign.Job{ID: 2, Attempt: 1, Args: args}); err != nil {
		t.Fatal(err)
	}
	var text string
	var after, before time.Time
	if err := b.pool.QueryRow(ctx, "SELECT certificate, valid_after, valid_before FROM ssh_certificates WHERE job_id = 2").Scan(&text, &after, &before); err != nil {
		t.Fatal(err)
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	cert := pub.(*ssh.Certificate)
	if cert.ValidBefore != uint64(before.Unix()) || before.Sub(after) != 8760*time.Hour+sshca.Backdate {
		t.Errorf("certificate ends at %d, record at %d (%s after its start)", cert.ValidBefore, before.Unix(), before.Sub(after))
	}
}
