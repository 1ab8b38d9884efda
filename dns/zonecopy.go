package dns

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/cloudflare/cloudflare-go"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/shardform/shardform/store"
)

// The zone copy: a zone's records as last read from Cloudflare, in
// Postgres (every process sees the same), kept current by shardform's own
// writes. Name checks read it instead of asking Cloudflare before every
// create; a whole-zone read (create when the copy is older than
// ZoneCopyTTL, reconcile, GET .../records) replaces it.

// copyRow is a Cloudflare record as a row of the copy.
type copyRow struct {
	CloudflareID string `json:"cloudflare_id"`
	Type         string `json:"type"`
	Name         string `json:"name"`
	Content      string `json:"content"`
	TTL          int    `json:"ttl"`
	Proxied      bool   `json:"proxied"`
	Priority     *int   `json:"priority"`
	Comment      string `json:"comment"`
}

func rowOf(r cloudflare.DNSRecord) copyRow {
	return copyRow{CloudflareID: r.ID, Type: r.Type, Name: strings.ToLower(strings.TrimSuffix(r.Name, ".")), Content: normContent(r.Type, r.Content),
		TTL: r.TTL, Proxied: r.Proxied != nil && *r.Proxied, Priority: priorityOf(r), Comment: r.Comment}
}

// ensureCopy reads the zone into its copy unless the copy is fresh.
func (s *Service) ensureCopy(ctx context.Context, org, credID uuid.UUID, zoneID string) error {
	c, err := s.q.GetDNSZoneCopy(ctx, s.st.Pool, store.GetDNSZoneCopyParams{OrganizationID: org, ZoneID: zoneID})
	if err == nil && s.opts.ZoneCopyTTL > 0 && s.opts.Now().Sub(c.ReadAt) < s.opts.ZoneCopyTTL {
		return nil
	}
	if err != nil && !store.IsNoRows(err) {
		return fmt.Errorf("read zone copy: %w", err)
	}
	_, err, _ = s.flight.Do("copy:"+org.String()+":"+zoneID, func() (any, error) {
		cl, err := s.clientFor(ctx, org, credID)
		if err != nil {
			return nil, err
		}
		_, _, err = s.readZone(ctx, cl, org, zoneID)
		return nil, err
	})
	return err
}

// staleCopyUsable reports whether a create may check names against the
// zone's copy though it could not be read again (err): Cloudflare is down
// or limiting, and a copy exists.
func (s *Service) staleCopyUsable(ctx context.Context, org uuid.UUID, zoneID string, err error) bool {
	if k := kindOf(err); k != errTransient && k != errRateLimited {
		return false
	}
	_, cerr := s.q.GetDNSZoneCopy(ctx, s.st.Pool, store.GetDNSZoneCopyParams{OrganizationID: org, ZoneID: zoneID})
	return cerr == nil
}

// workerCopyAge is how old a zone's copy may be for a worker to create a
// record on its word alone: an older copy (though still trusted by the
// API's check) is read again when the zone is small (refreshSmallCopy),
// else confirmed by one list call of the record's name, so a record made
// outside shardform since the copy was read is found.
const workerCopyAge = 30 * time.Second

// refreshSmallCopy reads the zone again for a worker whose copy is older
// than maxAge, when the copy holds less than one page of records: the read
// is then one call, as a list of the record's name would be, and it serves
// every create of the zone for maxAge (a long burst of creates stays at
// about one call each). It reports whether the copy is now trusted.
func (s *Service) refreshSmallCopy(ctx context.Context, cl *client, org uuid.UUID, zoneID string, maxAge time.Duration) bool {
	n, err := s.q.CountDNSZoneRecords(ctx, s.st.Pool, store.CountDNSZoneRecordsParams{OrganizationID: org, ZoneID: zoneID})
	if err != nil || n >= listPageSize {
		return false
	}
	_, err, _ = s.flight.Do("copy:"+org.String()+":"+zoneID, func() (any, error) {
		if s.copyTrusted(ctx, s.st.Pool, org, zoneID, maxAge) {
			return nil, nil // read meanwhile
		}
		_, _, err := s.readZone(ctx, cl, org, zoneID)
		return nil, err
	})
	return err == nil && s.copyTrusted(ctx, s.st.Pool, org, zoneID, maxAge)
}

// copyTrusted reports whether the zone's copy is younger than maxAge and
// than ZoneCopyTTL.
func (s *Service) copyTrusted(ctx context.Context, db store.DBTX, org uuid.UUID, zoneID string, maxAge time.Duration) bool {
	c, err := s.q.GetDNSZoneCopy(ctx, db, store.GetDNSZoneCopyParams{OrganizationID: org, ZoneID: zoneID})
	age := s.opts.Now().Sub(c.ReadAt)
	return err == nil && s.opts.ZoneCopyTTL > 0 && age < s.opts.ZoneCopyTTL && age < maxAge
}

// readZone lists the whole zone from Cloudflare (in pages) and replaces its
// copy; it answers the rows and the number of calls made.
func (s *Service) readZone(ctx context.Context, cl *client, org uuid.UUID, zoneID string) ([]store.DnsZoneRecord, int, error) {
	readAt := s.opts.Now()
	recs, calls, err := cl.listRecords(ctx, zoneID, "", "")
	if err != nil {
		return nil, calls, err
	}
	rows := make([]copyRow, len(recs))
	out := make([]store.DnsZoneRecord, len(recs))
	for i, r := range recs {
		rows[i] = rowOf(r)
		out[i] = store.DnsZoneRecord{OrganizationID: org, ZoneID: zoneID, CloudflareID: rows[i].CloudflareID, Type: rows[i].Type,
			Name: rows[i].Name, Content: rows[i].Content, Ttl: int32(rows[i].TTL), Proxied: rows[i].Proxied,
			Priority: int4(rows[i].Priority), Comment: rows[i].Comment}
	}
	b, err := json.Marshal(rows)
	if err != nil {
		return nil, calls, fmt.Errorf("zone copy: %w", err)
	}
	err = s.st.InTx(ctx, func(tx pgx.Tx) error {
		if err := s.q.ReplaceDNSZoneCopy(ctx, tx, store.ReplaceDNSZoneCopyParams{OrganizationID: org, ZoneID: zoneID, ReadAt: readAt}); err != nil {
			return err
		}
		return s.q.InsertDNSZoneRecords(ctx, tx, store.InsertDNSZoneRecordsParams{OrganizationID: org, ZoneID: zoneID, Records: b})
	})
	if err != nil {
		return nil, calls, fmt.Errorf("store zone copy of %s: %w", zoneID, err)
	}
	return out, calls, nil
}

// putCopy keeps one record shardform wrote in the zone's copy.
func (s *Service) putCopy(ctx context.Context, tx pgx.Tx, org uuid.UUID, zoneID string, r cloudflare.DNSRecord) error {
	c := rowOf(r)
	return s.q.PutDNSZoneRecord(ctx, tx, store.PutDNSZoneRecordParams{OrganizationID: org, ZoneID: zoneID, CloudflareID: c.CloudflareID,
		Type: c.Type, Name: c.Name, Content: c.Content, Ttl: int32(c.TTL), Proxied: c.Proxied, Priority: int4(c.Priority), Comment: c.Comment})
}
