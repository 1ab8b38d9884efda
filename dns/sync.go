package dns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/cloudflare/cloudflare-go"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/shardform/shardform/domain"
	"github.com/shardform/shardform/store"
)

// SyncJob is one attempt of a dns_sync job, as the worker hands it over.
type SyncJob struct {
	Args        SyncArgs
	Attempt     int
	MaxAttempts int
	// Complete marks the job completed inside the transaction that writes
	// the record's outcome (river.JobCompleteTx).
	Complete func(ctx context.Context, tx pgx.Tx) error
}

// outcome is what one sync found and did.
type outcome struct {
	status       string
	cloudflareID string
	err          string
	put          *cloudflare.DNSRecord // written: keep it in the zone's copy
	removed      string                // deleted: drop it from the copy
}

// errChanged: the record's desired state moved during the sync.
var errChanged = errors.New("the record changed during its sync")

// maxRounds bounds how often one job syncs a record that keeps changing.
const maxRounds = 5

// RunSync makes Cloudflare hold the record's desired state: it reads the
// record from Cloudflare (when it has one there), creates, updates or
// deletes it, and writes the outcome with the job's completion in one
// transaction. A 429 snoozes the job for Retry-After; a 5xx is retried
// with River's backoff; a 401 or 403 fails the record with Cloudflare's
// message and cancels the job.
func (s *Service) RunSync(ctx context.Context, j SyncJob) error {
	org, id := j.Args.OrganizationID, j.Args.RecordID
	for range maxRounds {
		rec, err := s.q.GetDNSRecord(ctx, s.st.Pool, store.GetDNSRecordParams{OrganizationID: org, ID: id})
		if store.IsNoRows(err) {
			return s.st.InTx(ctx, func(tx pgx.Tx) error { return j.Complete(ctx, tx) })
		}
		if err != nil {
			return fmt.Errorf("dns sync %s: %w", id, err)
		}
		if rec.Status != StatusPending && rec.Status != StatusDeleting {
			return s.st.InTx(ctx, func(tx pgx.Tx) error { return j.Complete(ctx, tx) })
		}
		out, err := s.syncOnce(ctx, rec, j.Attempt)
		if err != nil {
			return s.syncFailed(ctx, j, rec, err)
		}
		err = s.st.InTx(ctx, func(tx pgx.Tx) error {
			n, err := s.q.FinishDNSRecordSync(ctx, tx, store.FinishDNSRecordSyncParams{OrganizationID: org, ID: id,
				Generation: rec.Generation, Status: out.status, CloudflareID: out.cloudflareID, Error: domain.Truncate(out.err, 1000)})
			if err != nil {
				return err
			}
			if n == 0 {
				return errChanged
			}
			if out.put != nil {
				if err := s.putCopy(ctx, tx, org, rec.ZoneID, *out.put); err != nil {
					return err
				}
			}
			if out.removed != "" {
				if err := s.q.DeleteDNSZoneRecord(ctx, tx, store.DeleteDNSZoneRecordParams{OrganizationID: org, ZoneID: rec.ZoneID, CloudflareID: out.removed}); err != nil {
					return err
				}
			}
			return j.Complete(ctx, tx)
		})
		if errors.Is(err, errChanged) {
			continue
		}
		if err != nil {
			return fmt.Errorf("dns sync %s: record the outcome: %w", id, err)
		}
		return nil
	}
	return fmt.Errorf("dns sync %s: the record kept changing during %d syncs: retrying", id, maxRounds)
}

// syncFailed records a failed attempt. A refused credential fails the
// record and cancels the job; a rate limit snoozes it (not counted as an
// attempt); anything else is retried until the last attempt fails the record.
func (s *Service) syncFailed(ctx context.Context, j SyncJob, rec store.DnsRecord, cause error) error {
	org, id := rec.OrganizationID, rec.ID
	msg := domain.Truncate(cause.Error(), 1000)
	switch kindOf(cause) {
	case ErrRefused:
		if err := s.q.FailDNSRecord(ctx, s.st.Pool, store.FailDNSRecordParams{OrganizationID: org, ID: id, Error: msg}); err != nil {
			return fmt.Errorf("dns sync %s: %w", id, err)
		}
		return river.JobCancel(cause)
	case errRateLimited:
		var e *cfError
		errors.As(cause, &e)
		wait := max(e.retryAfter, time.Second)
		if err := s.q.SetDNSRecordError(ctx, s.st.Pool, store.SetDNSRecordErrorParams{OrganizationID: org, ID: id, Generation: rec.Generation,
			Error: msg + ": waiting " + wait.String()}); err != nil {
			return fmt.Errorf("dns sync %s: %w", id, err)
		}
		return river.JobSnooze(wait)
	}
	if j.Attempt >= j.MaxAttempts {
		if err := s.q.FailDNSRecord(ctx, s.st.Pool, store.FailDNSRecordParams{OrganizationID: org, ID: id,
			Error: fmt.Sprintf("%s (after %d attempts)", msg, j.Attempt)}); err != nil {
			return fmt.Errorf("dns sync %s: %w", id, err)
		}
		return river.JobCancel(cause)
	}
	if err := s.q.SetDNSRecordError(ctx, s.st.Pool, store.SetDNSRecordErrorParams{OrganizationID: org, ID: id, Generation: rec.Generation,
		Error: fmt.Sprintf("attempt %d: %s: retrying", j.Attempt, msg)}); err != nil {
		s.log.WarnContext(ctx, "could not record a dns sync error", slog.String("record_id", id.String()), slog.Any("error", err))
	}
	return cause
}

// failed is a final outcome with a reason.
func failed(format string, args ...any) (outcome, error) {
	return outcome{status: StatusFailed, err: fmt.Sprintf(format, args...)}, nil
}

// requestRefused reports a request Cloudflare refused (bad input, a
// conflict): the record fails with Cloudflare's message.
func requestRefused(err error) bool {
	var e *cfError
	return errors.As(err, &e) && e.kind == nil
}

// syncOnce does one reconciliation of rec with Cloudflare.
func (s *Service) syncOnce(ctx context.Context, rec store.DnsRecord, attempt int) (outcome, error) {
	if !rec.CredentialID.Valid {
		return failed("the record's cloudflare credential was deleted: create the record again with another credential")
	}
	cl, err := s.clientFor(ctx, rec.OrganizationID, rec.CredentialID.UUID)
	if errors.Is(err, domain.ErrNotFound) {
		return failed("the record's cloudflare credential was deleted")
	}
	if err != nil {
		return outcome{}, err
	}
	org, marker, d := rec.OrganizationID, Marker(rec.OrganizationID, rec.ID), desiredOf(rec)
	if rec.Status == StatusDeleting {
		return s.syncDelete(ctx, cl, rec, marker, attempt)
	}
	if rec.CloudflareID != "" {
		cur, err := cl.get(ctx, rec.ZoneID, rec.CloudflareID)
		switch {
		case kindOf(err) == errNotFound:
			// Deleted outside shardform (or the adopted record went away): create it.
		case err != nil:
			return outcome{}, err
		default:
			if cur.Comment != marker {
				if _, _, marked := parseMarker(cur.Comment); !rec.Adopt || marked {
					return failed("Cloudflare record %s (%s %s) does not carry this record's shardform marker: not touched", cur.ID, cur.Type, cur.Name)
				}
			}
			return s.write(ctx, cl, rec, d, marker, cur)
		}
	}
	// Create. The name must not be taken by a record this organization does
	// not manage: the zone's copy says so while it is younger than
	// workerCopyAge (an older copy of a small zone is read again, one call
	// for this and the next creates); otherwise (and on a retry, when an
	// earlier attempt may have created the record before its outcome was
	// written) Cloudflare is asked, with one list call of the name.
	if attempt > 1 || !s.copyTrusted(ctx, s.st.Pool, org, rec.ZoneID, workerCopyAge) && !s.refreshSmallCopy(ctx, cl, org, rec.ZoneID, workerCopyAge) {
		existing, _, err := cl.listRecords(ctx, rec.ZoneID, d.Name, "")
		if err != nil {
			return outcome{}, err
		}
		if out, done, err := s.resolveExisting(ctx, cl, rec, d, marker, existing); done || err != nil {
			return out, err
		}
	} else {
		zrs, err := s.q.ListDNSZoneRecordsByName(ctx, s.st.Pool, store.ListDNSZoneRecordsByNameParams{OrganizationID: org, ZoneID: rec.ZoneID, Name: d.Name})
		if err != nil {
			return outcome{}, err
		}
		rows := make([]copyRow, len(zrs))
		for i, z := range zrs {
			rows[i] = copyRow{CloudflareID: z.CloudflareID, Type: z.Type, Name: z.Name, Content: z.Content, Comment: z.Comment}
		}
		if t := taken(rows, d, org); t != nil {
			return failed("the name is taken by a record shardform does not manage: %s %s %s (Cloudflare record %s)", t.Type, t.Name, t.Content, t.CloudflareID)
		}
	}
	created, err := cl.create(ctx, rec.ZoneID, d, marker)
	var e *cfError
	if errors.As(err, &e) && e.kind == nil && (e.hasCode(81057) || e.hasCode(81053) || e.hasCode(81058)) {
		// Cloudflare has a record in the way: ours from an earlier attempt,
		// or another's.
		existing, _, lerr := cl.listRecords(ctx, rec.ZoneID, d.Name, "")
		if lerr != nil {
			return outcome{}, lerr
		}
		if out, done, rerr := s.resolveExisting(ctx, cl, rec, d, marker, existing); done || rerr != nil {
			return out, rerr
		}
		return failed("%s", err.Error())
	}
	if requestRefused(err) {
		return failed("%s", err.Error())
	}
	if err != nil {
		return outcome{}, err
	}
	return outcome{status: StatusSynced, cloudflareID: created.ID, put: &created}, nil
}

// taken is the first of rows that keeps d from being created: a record
// without this organization's marker, of the same type or where either is
// a CNAME.
func taken(rows []copyRow, d Desired, org uuid.UUID) *copyRow {
	for i, r := range rows {
		if r.Name == d.Name && conflicts(r.Type, d.Type) && !ownedBy(r.Comment, org) {
			return &rows[i]
		}
	}
	return nil
}

// resolveExisting looks at Cloudflare's records of the name: the record
// itself (from an earlier attempt) is brought to the desired state; a
// conflicting record shardform does not manage fails the record; otherwise
// the caller creates (done false).
func (s *Service) resolveExisting(ctx context.Context, cl *client, rec store.DnsRecord, d Desired, marker string, existing []cloudflare.DNSRecord) (outcome, bool, error) {
	rows := make([]copyRow, len(existing))
	for i, r := range existing {
		if r.Comment == marker {
			out, err := s.write(ctx, cl, rec, d, marker, r)
			return out, true, err
		}
		rows[i] = rowOf(r)
	}
	if t := taken(rows, d, rec.OrganizationID); t != nil {
		out, err := failed("the name is taken by a record shardform does not manage: %s %s %s (Cloudflare record %s)", t.Type, t.Name, t.Content, t.CloudflareID)
		return out, true, err
	}
	return outcome{}, false, nil
}

// write brings Cloudflare's record cur to the desired state with the marker.
// A rename first asks Cloudflare for the new name's records (one list
// call): a record made outside shardform there since the zone's copy was
// read fails the record rather than sharing the name.
func (s *Service) write(ctx context.Context, cl *client, rec store.DnsRecord, d Desired, marker string, cur cloudflare.DNSRecord) (outcome, error) {
	if same(cur, d, marker) {
		return outcome{status: StatusSynced, cloudflareID: cur.ID, put: &cur}, nil
	}
	if !strings.EqualFold(strings.TrimSuffix(cur.Name, "."), d.Name) {
		existing, _, err := cl.listRecords(ctx, rec.ZoneID, d.Name, "")
		if err != nil {
			return outcome{}, err
		}
		rows := make([]copyRow, 0, len(existing))
		for _, r := range existing {
			if r.ID != cur.ID {
				rows = append(rows, rowOf(r))
			}
		}
		if t := taken(rows, d, rec.OrganizationID); t != nil {
			return failed("the name is taken by a record shardform does not manage: %s %s %s (Cloudflare record %s)", t.Type, t.Name, t.Content, t.CloudflareID)
		}
	}
	upd, err := cl.update(ctx, rec.ZoneID, cur.ID, d, marker)
	if requestRefused(err) {
		return failed("%s", err.Error())
	}
	if kindOf(err) == errNotFound {
		return outcome{}, fmt.Errorf("cloudflare record %s vanished during the update: %w", cur.ID, err)
	}
	if err != nil {
		return outcome{}, err
	}
	return outcome{status: StatusSynced, cloudflareID: upd.ID, put: &upd}, nil
}

// syncDelete deletes the record from Cloudflare if it still carries the marker.
func (s *Service) syncDelete(ctx context.Context, cl *client, rec store.DnsRecord, marker string, attempt int) (outcome, error) {
	cfID := rec.CloudflareID
	if cfID == "" && attempt > 1 {
		// An earlier attempt may have been a create that never wrote its outcome.
		existing, _, err := cl.listRecords(ctx, rec.ZoneID, rec.Name, rec.Type)
		if err != nil {
			return outcome{}, err
		}
		for _, r := range existing {
			if r.Comment == marker {
				cfID = r.ID
			}
		}
	}
	if cfID == "" {
		return outcome{status: StatusDeleted}, nil
	}
	cur, err := cl.get(ctx, rec.ZoneID, cfID)
	if kindOf(err) == errNotFound {
		return outcome{status: StatusDeleted, cloudflareID: cfID, removed: cfID}, nil
	}
	if err != nil {
		return outcome{}, err
	}
	if cur.Comment != marker {
		return outcome{status: StatusDeleted, cloudflareID: cfID,
			err: fmt.Sprintf("left in Cloudflare: record %s no longer carries shardform's marker", cfID)}, nil
	}
	if err := cl.delete(ctx, rec.ZoneID, cfID); err != nil && kindOf(err) != errNotFound {
		return outcome{}, err
	}
	return outcome{status: StatusDeleted, cloudflareID: cfID, removed: cfID}, nil
}
