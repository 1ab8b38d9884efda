package capacity

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/shardform/shardform/credentials"
	"github.com/shardform/shardform/domain"
	"github.com/shardform/shardform/planner"
	"github.com/shardform/shardform/store"
)

// PricingSource reads one provider's current server types and prices from
// its API with a credential's secret (providers.HetznerPricing).
type PricingSource interface {
	Provider() string
	ReadPricing(ctx context.Context, secret map[string]string, readAt time.Time) ([]planner.InstanceType, error)
}

// SecretOpener opens a stored credential's secret (credentials.Service).
type SecretOpener interface {
	Secret(ctx context.Context, orgID, id uuid.UUID) (credentials.Secret, error)
}

// Queue inserts jobs inside the caller's transaction (river.Client does).
type Queue interface {
	InsertTx(ctx context.Context, tx pgx.Tx, args river.JobArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error)
}

// ErrNoCredential reports an organization without a default credential for
// a live pricing source: there is nothing to refresh with.
var ErrNoCredential = errors.New("no default credential")

// LiveStatus is one live source's latest refresh for an organization.
type LiveStatus struct {
	Provider string `json:"provider"`
	// Types is the number of priced entries (type × location) in use;
	// ReadAt is when they were read (null: never, the snapshot is used).
	Types  int        `json:"types"`
	ReadAt *time.Time `json:"read_at"`
	// AttemptedAt and Error describe the latest attempt: a failed attempt
	// keeps the previous read (or the snapshot) in use.
	AttemptedAt time.Time `json:"attempted_at"`
	Error       string    `json:"error,omitempty"`
}

// JobInfo answers a request that queued a job (202).
type JobInfo struct {
	JobID int64  `json:"job_id"`
	Kind  string `json:"kind"`
	// Duplicate: the same job was already waiting or running; this is it.
	Duplicate bool `json:"duplicate"`
}

// catalogCache keeps each organization's merged catalog (snapshot overlaid
// with its live prices) keyed by the read times of its live data, so a
// planner request costs one small query, not a decode of every live price.
// It holds only what the database says; any process rebuilds it.
type catalogCache struct {
	mu      sync.Mutex
	entries map[uuid.UUID]cachedCatalog
}

type cachedCatalog struct {
	stamp   string
	catalog planner.Catalog
}

// maxCachedCatalogs bounds the cache; past it the cache starts over.
const maxCachedCatalogs = 1024

func newCatalogCache() *catalogCache {
	return &catalogCache{entries: map[uuid.UUID]cachedCatalog{}}
}

func (c *catalogCache) get(org uuid.UUID, stamp string) (planner.Catalog, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[org]
	if !ok || e.stamp != stamp {
		return planner.Catalog{}, false
	}
	return e.catalog, true
}

func (c *catalogCache) put(org uuid.UUID, stamp string, cat planner.Catalog) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= maxCachedCatalogs {
		clear(c.entries)
	}
	c.entries[org] = cachedCatalog{stamp: stamp, catalog: cat}
}

// currentCatalog is the catalog an organization's answers use: the
// snapshot with every provider that has live data replaced by its newest
// live read (planner.Catalog.Overlay), and where that came from.
func (s *Service) currentCatalog(ctx context.Context, orgID uuid.UUID) (planner.Catalog, CatalogInfo, error) {
	rows, err := s.q.ListLivePricingStatus(ctx, s.st.Pool, orgID)
	if err != nil {
		return planner.Catalog{}, CatalogInfo{}, fmt.Errorf("read live pricing status: %w", err)
	}
	statuses := make([]LiveStatus, len(rows))
	var stamp strings.Builder
	for i, r := range rows {
		statuses[i] = LiveStatus{Provider: r.Provider, Types: int(r.TypeCount), ReadAt: r.ReadAt, AttemptedAt: r.AttemptedAt, Error: r.Error}
		if r.ReadAt != nil {
			stamp.WriteString(r.Provider + "@" + strconv.FormatInt(r.ReadAt.UnixNano(), 10) + ";")
		}
	}
	if stamp.Len() == 0 {
		return s.catalog, CatalogInfo{Source: s.catalog.Source, ReadAt: s.catalog.ReadAt, Live: statuses}, nil
	}
	c, ok := s.cache.get(orgID, stamp.String())
	if !ok {
		if c, err = s.loadLive(ctx, orgID); err != nil {
			return planner.Catalog{}, CatalogInfo{}, err
		}
		s.cache.put(orgID, stamp.String(), c)
	}
	return c, CatalogInfo{Source: c.Source, ReadAt: c.ReadAt, Live: statuses}, nil
}

// loadLive decodes the organization's live prices and lays them over the
// snapshot.
func (s *Service) loadLive(ctx context.Context, orgID uuid.UUID) (planner.Catalog, error) {
	rows, err := s.q.ListLivePricing(ctx, s.st.Pool, orgID)
	if err != nil {
		return planner.Catalog{}, fmt.Errorf("read live pricing: %w", err)
	}
	var types []planner.InstanceType
	var oldest time.Time
	for _, r := range rows {
		var ts []planner.InstanceType
		if err := json.Unmarshal(r.Types, &ts); err != nil {
			return planner.Catalog{}, fmt.Errorf("decode live pricing of %s: %w", r.Provider, err)
		}
		types = append(types, ts...)
		if r.ReadAt != nil && (oldest.IsZero() || r.ReadAt.Before(oldest)) {
			oldest = *r.ReadAt
		}
	}
	live, err := planner.NewCatalog(planner.SourceLive, oldest, types)
	if err != nil {
		return planner.Catalog{}, fmt.Errorf("live pricing: %w", err)
	}
	return s.catalog.Overlay(live)
}

// RequestPricingRefresh queues a pricing_refresh job for the caller's
// organization (planner:write). It needs a default credential for at least
// one live source (422 otherwise).
func (s *Service) RequestPricingRefresh(ctx context.Context, p *domain.Principal) (JobInfo, error) {
	if err := needPerm(p, domain.PermPlannerWrite); err != nil {
		return JobInfo{}, err
	}
	if len(s.live) == 0 || s.queue == nil {
		return JobInfo{}, &domain.PublicError{Kind: domain.ErrUnprocessable, Message: "live pricing is not configured on this server"}
	}
	var out JobInfo
	err := s.st.InTx(ctx, func(tx pgx.Tx) error {
		var have []string
		for _, src := range s.live {
			_, err := s.q.GetDefaultCredential(ctx, tx, store.GetDefaultCredentialParams{OrganizationID: p.OrgID, Provider: src.Provider()})
			if store.IsNoRows(err) {
				continue
			}
			if err != nil {
				return fmt.Errorf("request pricing refresh: %w", err)
			}
			have = append(have, src.Provider())
		}
		if len(have) == 0 {
			return &domain.PublicError{Kind: domain.ErrUnprocessable,
				Message: "no default " + s.liveProviders() + " credential in this organization: add one (POST /v1/credentials) to read live prices"}
		}
		res, err := s.queue.InsertTx(ctx, tx, PricingRefreshArgs{OrganizationID: p.OrgID}, nil)
		if err != nil {
			return fmt.Errorf("request pricing refresh: queue: %w", err)
		}
		out = JobInfo{JobID: res.Job.ID, Kind: KindPricingRefresh, Duplicate: res.UniqueSkippedAsDuplicate}
		return nil
	})
	return out, err
}

func (s *Service) liveProviders() string {
	names := make([]string, len(s.live))
	for i, src := range s.live {
		names[i] = src.Provider()
	}
	return strings.Join(names, " or ")
}

// EnqueuePricingRefreshes is the hourly fan-out: one pricing_refresh job
// per organization with a default credential for a live source, inserted
// in one transaction (jobs already waiting are not duplicated).
func (s *Service) EnqueuePricingRefreshes(ctx context.Context) (int, error) {
	if s.queue == nil {
		return 0, errors.New("enqueue pricing refreshes: no queue")
	}
	n := 0
	err := s.st.InTx(ctx, func(tx pgx.Tx) error {
		seen := map[uuid.UUID]bool{}
		for _, src := range s.live {
			orgs, err := s.q.ListOrganizationsWithDefaultCredential(ctx, tx, src.Provider())
			if err != nil {
				return fmt.Errorf("enqueue pricing refreshes: %w", err)
			}
			for _, org := range orgs {
				if seen[org] {
					continue
				}
				seen[org] = true
				if _, err := s.queue.InsertTx(ctx, tx, PricingRefreshArgs{OrganizationID: org}, nil); err != nil {
					return fmt.Errorf("enqueue pricing refresh of %s: %w", org, err)
				}
				n++
			}
		}
		return nil
	})
	return n, err
}

// RefreshPricing reads every live source with the organization's default
// credential for it and stores the result; a source that fails keeps its
// previous read (or the snapshot) and records the error, which is also
// returned (joined, one per failed source). A source without a default
// credential is skipped; if none has one the error wraps ErrNoCredential.
func (s *Service) RefreshPricing(ctx context.Context, orgID uuid.UUID) error {
	var errs []error
	refreshed := 0
	for _, src := range s.live {
		provider := src.Provider()
		cred, err := s.q.GetDefaultCredential(ctx, s.st.Pool, store.GetDefaultCredentialParams{OrganizationID: orgID, Provider: provider})
		if store.IsNoRows(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("refresh pricing of %s: %w", provider, err)
		}
		refreshed++
		if err := s.refreshOne(ctx, orgID, src, cred.ID); err != nil {
			msg := err.Error()
			if rerr := s.q.RecordLivePricingError(ctx, s.st.Pool, store.RecordLivePricingErrorParams{
				OrganizationID: orgID, Provider: provider, AttemptedAt: s.now(), Error: truncate(msg, 1000),
			}); rerr != nil {
				return fmt.Errorf("refresh pricing of %s: record error %q: %w", provider, msg, rerr)
			}
			errs = append(errs, fmt.Errorf("refresh pricing of %s: %w", provider, err))
		}
	}
	if refreshed == 0 {
		return fmt.Errorf("refresh pricing of organization %s: %w for %s", orgID, ErrNoCredential, s.liveProviders())
	}
	return errors.Join(errs...)
}

func (s *Service) refreshOne(ctx context.Context, orgID uuid.UUID, src PricingSource, credID uuid.UUID) error {
	secret, err := s.secrets.Secret(ctx, orgID, credID)
	if err != nil {
		return fmt.Errorf("open credential: %w", err)
	}
	readAt := s.now().UTC().Truncate(time.Microsecond) // Postgres keeps microseconds
	types, err := src.ReadPricing(ctx, secret, readAt)
	if err != nil {
		return err
	}
	if len(types) == 0 {
		return errors.New("the API listed no priced server types")
	}
	for _, t := range types {
		if t.Provider != src.Provider() {
			return fmt.Errorf("source %s returned a type of %s", src.Provider(), t.Provider)
		}
	}
	c, err := planner.NewCatalog(planner.SourceLive, readAt, types)
	if err != nil {
		return err
	}
	raw, err := json.Marshal(c.Types)
	if err != nil {
		return fmt.Errorf("encode live pricing: %w", err)
	}
	if err := s.q.SaveLivePricing(ctx, s.st.Pool, store.SaveLivePricingParams{
		OrganizationID: orgID, Provider: src.Provider(), Types: raw, TypeCount: int32(len(c.Types)), ReadAt: &readAt,
	}); err != nil {
		return fmt.Errorf("store live pricing: %w", err)
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}
