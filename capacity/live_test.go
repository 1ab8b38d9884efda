package capacity

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shardform/shardform/credentials"
	"github.com/shardform/shardform/planner"
	"github.com/shardform/shardform/store"
	"github.com/shardform/shardform/store/storetest"
)

// fakeSource answers ReadPricing with whatever the test set last.
type fakeSource struct {
	mu    sync.Mutex
	types []planner.InstanceType
	err   error
	calls int
}

func (*fakeSource) Provider() string { return "hetzner" }

func (f *fakeSource) ReadPricing(_ context.Context, secret map[string]string, readAt time.Time) ([]planner.InstanceType, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if secret["token"] != "tok" {
		return nil, errors.New("wrong secret handed to the source")
	}
	out := make([]planner.InstanceType, len(f.types))
	for i, t := range f.types {
		t.ReadAt = readAt
		out[i] = t
	}
	return out, f.err
}

func (f *fakeSource) set(types []planner.InstanceType, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.types, f.err = types, err
}

type fakeSecrets struct{}

func (fakeSecrets) Secret(context.Context, uuid.UUID, uuid.UUID) (credentials.Secret, error) {
	return credentials.Secret{"token": "tok"}, nil
}

func liveType(region, name, monthly string) planner.InstanceType {
	m, _ := planner.ParseMoney(monthly, "EUR")
	h, _ := m.Div(planner.HoursPerMonth)
	return planner.InstanceType{Provider: "hetzner", Region: region, Name: name, VCPU: 2, CPUKind: planner.CPUShared, Arch: planner.ArchX86,
		MemoryMiB: 4096, DiskGB: 40, Hourly: h, Monthly: m, Source: planner.SourceLive}
}

func TestNewValidatesConfig(t *testing.T) {
	t.Parallel()
	st := store.NewStore(nil)
	ptr := func(n int) *int { return &n }
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"defaults", Config{}, true},
		{"zero threshold", Config{FleetSavingThresholdPercent: ptr(0)}, true},
		{"threshold 100", Config{FleetSavingThresholdPercent: ptr(100)}, true},
		{"negative threshold", Config{FleetSavingThresholdPercent: ptr(-1)}, false},
		{"threshold over 100", Config{FleetSavingThresholdPercent: ptr(101)}, false},
		{"live without secrets", Config{Live: []PricingSource{&fakeSource{}}}, false},
		{"live with secrets", Config{Live: []PricingSource{&fakeSource{}}, Secrets: fakeSecrets{}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, err := New(st, tt.cfg)
			if (err == nil) != tt.ok {
				t.Fatalf("err = %v, want ok %v", err, tt.ok)
			}
			if tt.ok && tt.cfg.FleetSavingThresholdPercent == nil && s.ThresholdPercent() != planner.DefaultSavingThresholdPercent {
				t.Errorf("threshold %d", s.ThresholdPercent())
			}
		})
	}
}

func TestRefreshPricing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := storetest.NewPool(t)
	st := store.NewStore(pool)
	src := &fakeSource{}
	clock := time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)
	svc, err := New(st, Config{Live: []PricingSource{src}, Secrets: fakeSecrets{}, Now: func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	var org uuid.UUID
	if err := pool.QueryRow(ctx, "INSERT INTO organizations (name) VALUES ('acme') RETURNING id").Scan(&org); err != nil {
		t.Fatal(err)
	}
	price := func(key string) string {
		t.Helper()
		c, _, err := svc.currentCatalog(ctx, org)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range c.Types {
			if it.Key() == key {
				return it.Monthly.Amount() + " " + string(it.Source)
			}
		}
		return "absent"
	}

	if err := svc.RefreshPricing(ctx, org); !errors.Is(err, ErrNoCredential) {
		t.Fatalf("without a credential: %v", err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO credentials (id, organization_id, name, provider, secret, hint, is_default)
		VALUES ($1, $2, 'h', 'hetzner', '\x00', '…', true)`, uuid.New(), org); err != nil {
		t.Fatal(err)
	}

	steps := []struct {
		name    string
		types   []planner.InstanceType
		err     error
		wantErr string
		want    map[string]string // catalog key → "monthly source", "snapshot" (any price) or "absent"
	}{
		{"first read replaces the snapshot's hetzner part", []planner.InstanceType{liveType("fsn1", "cx23", "3.49")}, nil, "",
			map[string]string{"hetzner/fsn1/cx23": "3.49 live", "hetzner/fsn1/cx33": "absent", "aws/eu-central-1/t3.medium": "snapshot"}},
		{"a new read replaces the cached catalog", []planner.InstanceType{liveType("fsn1", "cx23", "3.99"), liveType("fsn1", "cx33", "6.49")}, nil, "",
			map[string]string{"hetzner/fsn1/cx23": "3.99 live", "hetzner/fsn1/cx33": "6.49 live"}},
		{"an API error keeps the last read", nil, errors.New("hetzner: get pricing: boom"), "boom",
			map[string]string{"hetzner/fsn1/cx23": "3.99 live"}},
		{"an empty answer is an error", []planner.InstanceType{}, nil, "no priced server types",
			map[string]string{"hetzner/fsn1/cx23": "3.99 live"}},
		{"another provider's type is refused", []planner.InstanceType{func() planner.InstanceType {
			it := liveType("fsn1", "cx23", "1")
			it.Provider = "aws"
			return it
		}()}, nil, "returned a type of aws", map[string]string{"hetzner/fsn1/cx23": "3.99 live"}},
		{"an invalid type is refused", []planner.InstanceType{func() planner.InstanceType {
			it := liveType("fsn1", "cx23", "1")
			it.VCPU = 0
			return it
		}()}, nil, "vcpu", map[string]string{"hetzner/fsn1/cx23": "3.99 live"}},
	}
	for _, step := range steps {
		clock = clock.Add(time.Hour)
		src.set(step.types, step.err)
		err := svc.RefreshPricing(ctx, org)
		if step.wantErr == "" && err != nil || step.wantErr != "" && (err == nil || !strings.Contains(err.Error(), step.wantErr)) {
			t.Fatalf("%s: err = %v, want %q", step.name, err, step.wantErr)
		}
		for key, want := range step.want {
			got := price(key)
			if want == "snapshot" && !strings.HasSuffix(got, " snapshot") || want != "snapshot" && got != want {
				t.Errorf("%s: %s = %q, want %q", step.name, key, got, want)
			}
		}
		_, info, err := svc.currentCatalog(ctx, org)
		if err != nil {
			t.Fatal(err)
		}
		if len(info.Live) != 1 || !info.Live[0].AttemptedAt.Equal(clock) || (step.wantErr == "") != (info.Live[0].Error == "") {
			t.Errorf("%s: live status %+v", step.name, info.Live)
		}
		if info.Source != planner.SourceMixed {
			t.Errorf("%s: source %s", step.name, info.Source)
		}
	}
}
