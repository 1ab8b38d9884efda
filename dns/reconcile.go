package dns

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/cloudflare/cloudflare-go"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/shardform/shardform/audit"
	"github.com/shardform/shardform/domain"
	"github.com/shardform/shardform/store"
)

// Report is what a reconcile of an organization found and did.
type Report struct {
	StartedAt  string       `json:"started_at"`
	FinishedAt string       `json:"finished_at"`
	Zones      []ZoneReport `json:"zones"`
	// Calls is the number of Cloudflare API calls the reconcile made.
	Calls int `json:"calls"`
}

// ZoneReport is one zone's part of a reconcile.
type ZoneReport struct {
	ZoneID   string `json:"zone_id"`
	ZoneName string `json:"zone_name"`
	// Records is the number of records in the zone; Managed, the synced
	// records of this organization compared; InSync, those that matched.
	Records int `json:"records"`
	Managed int `json:"managed"`
	InSync  int `json:"in_sync"`
	// Recreated: deleted outside shardform, created again.
	Recreated []Repair `json:"recreated"`
	// Repaired: changed outside shardform, set back.
	Repaired []Repair `json:"repaired"`
	// MarkerLost: the record's marker was removed outside shardform: not
	// touched, the record is failed.
	MarkerLost []Repair `json:"marker_lost"`
	// Foreign is the number of records not managed by this organization
	// (only reported, never touched); ForeignRecords lists the first 100.
	Foreign        int             `json:"foreign"`
	ForeignRecords []ForeignRecord `json:"foreign_records"`
	// Orphans are records carrying this organization's marker for a record
	// shardform no longer has (left in place).
	Orphans []ForeignRecord `json:"orphans"`
	// Conflicts are managed records sharing their name and type with a
	// record shardform does not manage for this organization (made outside
	// shardform since the zone was last read): only reported (the first 100).
	Conflicts []Conflict `json:"conflicts"`
	Errors    []string   `json:"errors"`
	Calls     int        `json:"calls"`
}

// Repair is one record a reconcile acted on.
type Repair struct {
	RecordID uuid.UUID `json:"record_id"`
	Type     string    `json:"type"`
	Name     string    `json:"name"`
	// Changes are what differed ("content: 9.9.9.9 → 1.2.3.4").
	Changes []string `json:"changes"`
}

// ForeignRecord is a record of the zone shardform did not touch.
type ForeignRecord struct {
	ID      string `json:"id"`
	Type    string `json:"type"`
	Name    string `json:"name"`
	Content string `json:"content"`
}

// Conflict is a managed record and an unmanaged one of the same name and type.
type Conflict struct {
	RecordID uuid.UUID     `json:"record_id"`
	Type     string        `json:"type"`
	Name     string        `json:"name"`
	Foreign  ForeignRecord `json:"foreign"`
}

// maxListed bounds the foreign records and orphans listed per zone.
const maxListed = 100

// RunReconcile compares every synced record of the organization with
// Cloudflare: one whole-zone read per zone (in pages), then a write only
// for what drifted. A record deleted outside shardform is created again; one
// changed outside is set back (the audit log says so); foreign records are
// only reported. Without an organization it queues one reconcile per
// organization with synced records (the periodic job).
func (s *Service) RunReconcile(ctx context.Context, org uuid.UUID) (Report, error) {
	if org == uuid.Nil {
		return Report{}, s.fanOut(ctx)
	}
	started := s.opts.Now()
	rep := Report{StartedAt: started.UTC().Format(timeFormat), Zones: []ZoneReport{}}
	zones, err := s.q.ListDNSZonesInUse(ctx, s.st.Pool, org)
	if err != nil {
		return rep, fmt.Errorf("dns reconcile: %w", err)
	}
	var limited, unavailable error // Cloudflare's 429 and 5xx (or the network)
	repaired := 0
	for _, z := range zones {
		zr, cfErr := s.reconcileZone(ctx, org, z)
		rep.Calls += zr.Calls
		rep.Zones = append(rep.Zones, zr)
		repaired += len(zr.Recreated) + len(zr.Repaired) + len(zr.MarkerLost)
		switch kindOf(cfErr) {
		case errRateLimited:
			limited = cfErr
		case errTransient:
			unavailable = cfErr
		}
		if limited != nil {
			break // every zone shares the token's budget: go on after the wait
		}
	}
	finished := s.opts.Now()
	rep.FinishedAt = finished.UTC().Format(timeFormat)
	b, err := json.Marshal(rep)
	if err != nil {
		return rep, fmt.Errorf("dns reconcile: %w", err)
	}
	if err := s.q.UpsertDNSReconcile(ctx, s.st.Pool, store.UpsertDNSReconcileParams{OrganizationID: org, StartedAt: started, FinishedAt: finished, Report: b}); err != nil {
		return rep, fmt.Errorf("dns reconcile: store the report: %w", err)
	}
	var e *cfError
	switch {
	case errors.As(limited, &e):
		// Rate limited: run again once Cloudflare (or the shared budget)
		// allows it; what was repaired is in sync by then.
		return rep, river.JobSnooze(max(e.retryAfter, time.Second))
	case unavailable != nil && repaired == 0:
		// Cloudflare is down and nothing was done: River retries with backoff.
		return rep, fmt.Errorf("dns reconcile: %w", unavailable)
	}
	return rep, nil
}

const timeFormat = "2006-01-02T15:04:05.000Z07:00"

func (s *Service) fanOut(ctx context.Context) error {
	orgs, err := s.q.ListOrganizationsWithDNS(ctx, s.st.Pool)
	if err != nil {
		return fmt.Errorf("dns reconcile fan-out: %w", err)
	}
	return s.st.InTx(ctx, func(tx pgx.Tx) error {
		for _, o := range orgs {
			if _, err := s.queue.InsertTx(ctx, tx, ReconcileArgs{OrganizationID: o}, nil); err != nil {
				return fmt.Errorf("dns reconcile fan-out: %w", err)
			}
		}
		return nil
	})
}

// differences lists what differs between Cloudflare's record and the desired one.
func differences(cur store.DnsZoneRecord, d Desired) []string {
	var out []string
	if cur.Name != d.Name {
		out = append(out, fmt.Sprintf("name: %s → %s", cur.Name, d.Name))
	}
	if !sameContent(d.Type, cur.Content, d.Content) {
		out = append(out, fmt.Sprintf("content: %s → %s", cur.Content, d.Content))
	}
	if want := effectiveTTL(d.TTL, d.Proxied); int(cur.Ttl) != want {
		out = append(out, fmt.Sprintf("ttl: %d → %d", cur.Ttl, want))
	}
	if cur.Proxied != d.Proxied {
		out = append(out, fmt.Sprintf("proxied: %t → %t", cur.Proxied, d.Proxied))
	}
	if !samePriority(intPtr(cur.Priority), d.Priority, d.Type) {
		show := func(p *int) string {
			if p == nil {
				return "none"
			}
			return strconv.Itoa(*p)
		}
		out = append(out, fmt.Sprintf("priority: %s → %s", show(intPtr(cur.Priority)), show(d.Priority)))
	}
	return out
}

// reconcileZone reconciles one zone; cfErr is the last rate limit or outage
// of Cloudflare met (also in the report's errors).
func (s *Service) reconcileZone(ctx context.Context, org uuid.UUID, z store.ListDNSZonesInUseRow) (zr ZoneReport, cfErr error) {
	zr = ZoneReport{ZoneID: z.ZoneID, ZoneName: z.ZoneName, Recreated: []Repair{}, Repaired: []Repair{}, MarkerLost: []Repair{},
		ForeignRecords: []ForeignRecord{}, Orphans: []ForeignRecord{}, Conflicts: []Conflict{}, Errors: []string{}}
	cl, err := s.clientFor(ctx, org, z.CredentialID.UUID)
	if err != nil {
		zr.Errors = append(zr.Errors, err.Error())
		return zr, nil
	}
	defer func() { zr.Calls = cl.calls() }()
	rows, _, err := s.readZone(ctx, cl, org, z.ZoneID)
	if err != nil {
		zr.Errors = append(zr.Errors, err.Error())
		return zr, err
	}
	zr.Records = len(rows)
	byID := make(map[string]store.DnsZoneRecord, len(rows))
	for _, r := range rows {
		byID[r.CloudflareID] = r
	}
	ids, err := s.q.ListDNSRecordIDsOfZone(ctx, s.st.Pool, store.ListDNSRecordIDsOfZoneParams{OrganizationID: org, ZoneID: z.ZoneID})
	if err != nil {
		zr.Errors = append(zr.Errors, err.Error())
		return zr, nil
	}
	known := make(map[uuid.UUID]bool, len(ids))
	for _, id := range ids {
		known[id] = true
	}
	foreignOf := map[string]ForeignRecord{} // the first unmanaged record of each name and type
	for _, r := range rows {
		o, id, marked := parseMarker(r.Comment)
		switch {
		case marked && o == org && known[id]:
		case marked && o == org:
			if len(zr.Orphans) < maxListed {
				zr.Orphans = append(zr.Orphans, ForeignRecord{ID: r.CloudflareID, Type: r.Type, Name: r.Name, Content: r.Content})
			}
		default:
			zr.Foreign++
			fr := ForeignRecord{ID: r.CloudflareID, Type: r.Type, Name: r.Name, Content: r.Content}
			if len(zr.ForeignRecords) < maxListed {
				zr.ForeignRecords = append(zr.ForeignRecords, fr)
			}
			if _, seen := foreignOf[r.Name+" "+r.Type]; !seen {
				foreignOf[r.Name+" "+r.Type] = fr
			}
		}
	}
	synced, err := s.q.ListSyncedDNSRecordsOfZone(ctx, s.st.Pool, store.ListSyncedDNSRecordsOfZoneParams{OrganizationID: org, ZoneID: z.ZoneID})
	if err != nil {
		zr.Errors = append(zr.Errors, err.Error())
		return zr, nil
	}
	for _, rec := range synced {
		if rec.CredentialID != z.CredentialID {
			continue // another credential's records in the zone: their own pass
		}
		zr.Managed++
		if fr, ok := foreignOf[rec.Name+" "+rec.Type]; ok && len(zr.Conflicts) < maxListed {
			zr.Conflicts = append(zr.Conflicts, Conflict{RecordID: rec.ID, Type: rec.Type, Name: rec.Name, Foreign: fr})
		}
		marker, d := Marker(org, rec.ID), desiredOf(rec)
		cur, found := byID[rec.CloudflareID]
		rp := Repair{RecordID: rec.ID, Type: rec.Type, Name: rec.Name}
		var action string
		switch {
		case !found:
			action, rp.Changes = "dns.reconcile.recreate", []string{"deleted outside shardform: created again"}
		case cur.Comment != marker:
			rp.Changes = []string{"marker removed outside shardform (comment " + strconvQuote(cur.Comment) + "): not touched"}
			msg := "the record's shardform marker was removed in Cloudflare (record " + cur.CloudflareID + "): not touched; delete this record, or create it again with adopt: true"
			err := s.st.InTx(ctx, func(tx pgx.Tx) error {
				if err := s.unchanged(ctx, tx, rec); err != nil {
					return err
				}
				if err := s.q.FailDNSRecord(ctx, tx, store.FailDNSRecordParams{OrganizationID: org, ID: rec.ID, Error: msg}); err != nil {
					return err
				}
				return s.auditTx(ctx, tx, org, "dns.reconcile.marker_lost", rec.ID.String()+": "+rp.Changes[0])
			})
			switch {
			case errors.Is(err, errChanged):
			case err != nil:
				zr.Errors = append(zr.Errors, err.Error())
			default:
				zr.MarkerLost = append(zr.MarkerLost, rp)
			}
			continue
		default:
			rp.Changes = differences(cur, d)
			if len(rp.Changes) == 0 {
				zr.InSync++
				continue
			}
			action = "dns.reconcile.repair"
		}
		werr := s.repair(ctx, cl, rec, d, marker, action, rp, found)
		if errors.Is(werr, errChanged) {
			// Changed or deleted through the API since the zone was read:
			// its own sync job has it; nothing was written.
			zr.Managed--
			continue
		}
		if werr != nil {
			zr.Errors = append(zr.Errors, fmt.Sprintf("record %s (%s %s): %s", rec.ID, rec.Type, rec.Name, werr.Error()))
			if k := kindOf(werr); k == errRateLimited || k == errTransient {
				cfErr = werr
			}
			if kindOf(werr) == ErrRefused || kindOf(werr) == errRateLimited {
				break // the rest would fail alike; the next reconcile goes on
			}
			continue
		}
		if action == "dns.reconcile.recreate" {
			zr.Recreated = append(zr.Recreated, rp)
		} else {
			zr.Repaired = append(zr.Repaired, rp)
		}
		s.log.InfoContext(ctx, "dns drift repaired", slog.String("organization_id", org.String()), slog.String("record_id", rec.ID.String()),
			slog.String("action", action), slog.String("changes", strings.Join(rp.Changes, "; ")))
	}
	return zr, cfErr
}

// unchanged locks the record's row and checks it is still the synced
// record the reconcile read (errChanged otherwise): a change or delete
// through the API meanwhile belongs to the record's own sync job.
func (s *Service) unchanged(ctx context.Context, tx pgx.Tx, rec store.DnsRecord) error {
	now, err := s.q.LockDNSRecord(ctx, tx, store.LockDNSRecordParams{OrganizationID: rec.OrganizationID, ID: rec.ID})
	if store.IsNoRows(err) {
		return errChanged
	}
	if err != nil {
		return err
	}
	if now.Status != StatusSynced || now.Generation != rec.Generation || now.CloudflareID != rec.CloudflareID {
		return errChanged
	}
	return nil
}

// repair recreates (found false) or sets back one drifted record. The
// record's row stays locked from the check that it is unchanged until the
// outcome is written, so an API change waits for this one Cloudflare call
// and is then synced by its own job; a creation whose outcome cannot be
// written is undone.
func (s *Service) repair(ctx context.Context, cl *client, rec store.DnsRecord, d Desired, marker, action string, rp Repair, found bool) error {
	org := rec.OrganizationID
	var created string
	err := s.st.InTx(ctx, func(tx pgx.Tx) error {
		if err := s.unchanged(ctx, tx, rec); err != nil {
			return err
		}
		var written cloudflare.DNSRecord
		var err error
		if found {
			written, err = cl.update(ctx, rec.ZoneID, rec.CloudflareID, d, marker)
		} else {
			written, err = cl.create(ctx, rec.ZoneID, d, marker)
			created = written.ID
		}
		if err != nil {
			return err
		}
		n, err := s.q.RepairedDNSRecord(ctx, tx, store.RepairedDNSRecordParams{OrganizationID: org, ID: rec.ID, Generation: rec.Generation, CloudflareID: written.ID})
		if err != nil {
			return err
		}
		if n == 0 {
			return errChanged
		}
		if err := s.putCopy(ctx, tx, org, rec.ZoneID, written); err != nil {
			return err
		}
		return s.auditTx(ctx, tx, org, action, rec.ID.String()+": "+strings.Join(rp.Changes, "; "))
	})
	if err != nil && created != "" {
		if derr := cl.delete(context.WithoutCancel(ctx), rec.ZoneID, created); derr != nil && kindOf(derr) != errNotFound {
			s.log.WarnContext(ctx, "could not undo a reconcile's creation", slog.String("record_id", rec.ID.String()),
				slog.String("cloudflare_id", created), slog.Any("error", derr))
		}
	}
	return err
}

func strconvQuote(s string) string { return strconv.Quote(domain.Truncate(s, 100)) }

// auditTx writes an audit entry of work shardform did by itself (no user).
func (s *Service) auditTx(ctx context.Context, tx pgx.Tx, org uuid.UUID, action, target string) error {
	return s.q.InsertAuditLog(ctx, tx, store.InsertAuditLogParams{OrganizationID: audit.Nullable(org), Action: action,
		Target: domain.Truncate(target, 1000), Status: 200})
}
