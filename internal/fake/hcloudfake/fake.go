// Package hcloudfake is a local fake of the Hetzner Cloud API endpoints
// shardform calls through hcloud-go: the two the planner's pricing refresh
// reads (GET /server_types, paginated, and GET /pricing), and the ones of
// power actions (GET /servers/{id}, POST /servers/{id}/actions/poweron,
// shutdown, poweroff and reboot, and the action polling of Action.WaitFor,
// GET /actions?id=...; see servers.go). It answers in hcloud-go's own
// schema types. Tests point hcloud.WithEndpoint at it.
package hcloudfake

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hetznercloud/hcloud-go/v2/hcloud/schema"
)

// Token is the API token the fake accepts unless Options say otherwise.
const Token = "hcloud-test-token-0123456789"

// Options shape the fake.
type Options struct {
	Token    string // accepted bearer token; empty: Token
	PageSize int    // server types per page at most (exercises pagination); 0: 2
	// PricingStatus, when set, makes GET /pricing fail with that status.
	PricingStatus int
}

// Server is a running fake.
type Server struct {
	URL      string       // the endpoint for hcloud.WithEndpoint
	Requests atomic.Int64 // requests answered, refused ones included
	Refused  atomic.Int64 // requests refused with 401
	opts     Options
	srv      *httptest.Server
	machines machines // servers.go
}

// New starts a fake for the test's duration.
func New(t testing.TB, opts Options) *Server {
	t.Helper()
	s, h := newServer(opts)
	s.srv = httptest.NewServer(h)
	t.Cleanup(s.srv.Close)
	s.URL = s.srv.URL
	return s
}

// Handler is the fake as a plain handler, to serve outside tests (demos).
func Handler(opts Options) http.Handler {
	_, h := newServer(opts)
	return h
}

func newServer(opts Options) (*Server, http.Handler) {
	if opts.Token == "" {
		opts.Token = Token
	}
	if opts.PageSize <= 0 {
		opts.PageSize = 2
	}
	s := &Server{opts: opts}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /server_types", s.serverTypes)
	mux.HandleFunc("GET /pricing", s.pricing)
	s.serverRoutes(mux)
	return s, s.auth(mux)
}

func (s *Server) auth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.Requests.Add(1)
		if r.Header.Get("Authorization") != "Bearer "+s.opts.Token {
			s.Refused.Add(1)
			writeError(w, http.StatusUnauthorized, "unauthorized", "unable to authenticate")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, schema.ErrorResponse{Error: schema.Error{Code: code, Message: msg}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Server) serverTypes(w http.ResponseWriter, r *http.Request) {
	all := ServerTypes()
	page, _ := strconv.Atoi(r.URL.Query().Get("page"))
	per, _ := strconv.Atoi(r.URL.Query().Get("per_page"))
	page = max(page, 1)
	if per <= 0 || per > s.opts.PageSize {
		per = s.opts.PageSize
	}
	last := max((len(all)+per-1)/per, 1)
	from := min((page-1)*per, len(all))
	resp := struct {
		schema.ServerTypeListResponse
		schema.MetaResponse
	}{}
	resp.ServerTypes = all[from:min(from+per, len(all))]
	p := &schema.MetaPagination{Page: page, PerPage: per, LastPage: last, TotalEntries: len(all)}
	if page > 1 {
		p.PreviousPage = page - 1
	}
	if page < last {
		p.NextPage = page + 1
	}
	resp.Meta.Pagination = p
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) pricing(w http.ResponseWriter, _ *http.Request) {
	switch s.opts.PricingStatus {
	case 0:
	case http.StatusForbidden:
		writeError(w, http.StatusForbidden, "forbidden", "insufficient permissions")
		return
	default:
		writeError(w, s.opts.PricingStatus, "service_error", "pricing is unavailable")
		return
	}
	writeJSON(w, http.StatusOK, schema.PricingGetResponse{Pricing: Pricing()})
}

// Announced is when the fake's deprecated types were announced deprecated.
func Announced() time.Time { return time.Date(2025, 10, 16, 0, 0, 0, 0, time.UTC) }

// UnavailableAfter is when the fake's deprecated types stop being sold.
func UnavailableAfter() time.Time { return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) }

// ServerTypes is the fake's server type list: cx23 (shared x86), cax11
// (arm), ccx13 (dedicated), cx22 (deprecated everywhere, the old type-wide
// field) and cpx11 (deprecated in hel1 only, the per-location field).
// tx99 has no price and must be left out.
func ServerTypes() []schema.ServerType {
	dep := func() schema.DeprecatableResource {
		return schema.DeprecatableResource{Deprecation: &schema.DeprecationInfo{Announced: Announced(), UnavailableAfter: UnavailableAfter()}}
	}
	locs := func(names ...string) []schema.ServerTypeLocation {
		out := make([]schema.ServerTypeLocation, len(names))
		for i, n := range names {
			out[i] = schema.ServerTypeLocation{ID: int64(i + 1), Name: n, Available: true}
		}
		return out
	}
	cx22 := schema.ServerType{ID: 1, Name: "cx22", Cores: 2, Memory: 4, Disk: 40, StorageType: "local", CPUType: "shared", Architecture: "x86",
		Deprecated: true, DeprecatableResource: dep(), Locations: locs("fsn1", "nbg1")}
	cpx11 := schema.ServerType{ID: 22, Name: "cpx11", Cores: 2, Memory: 2, Disk: 40, StorageType: "local", CPUType: "shared", Architecture: "x86",
		Locations: locs("fsn1", "hel1")}
	cpx11.Locations[1].DeprecatableResource = dep()
	return []schema.ServerType{
		cx22,
		cpx11,
		{ID: 104, Name: "cx23", Cores: 2, Memory: 4, Disk: 40, StorageType: "local", CPUType: "shared", Architecture: "x86", Locations: locs("fsn1", "nbg1", "hel1")},
		{ID: 45, Name: "cax11", Cores: 2, Memory: 4, Disk: 40, StorageType: "local", CPUType: "shared", Architecture: "arm", Locations: locs("fsn1", "nbg1", "hel1")},
		{ID: 96, Name: "ccx13", Cores: 2, Memory: 8, Disk: 80, StorageType: "local", CPUType: "dedicated", Architecture: "x86", Locations: locs("fsn1", "ash")},
		{ID: 999, Name: "tx99", Cores: 1, Memory: 0.5, Disk: 10, StorageType: "local", CPUType: "shared", Architecture: "x86", Locations: locs("fsn1")},
	}
}

// price is a location's price as Hetzner writes it: net and gross with 16
// decimal places.
func price(loc, hourly, hourlyGross, monthly, monthlyGross string) schema.PricingServerTypePrice {
	return schema.PricingServerTypePrice{
		Location:     loc,
		PriceHourly:  schema.Price{Net: hourly, Gross: hourlyGross},
		PriceMonthly: schema.Price{Net: monthly, Gross: monthlyGross},
	}
}

// Pricing is the fake's /pricing answer (EUR, 19% VAT). The figures are
// the fake's own, chosen with many decimal places to test exact parsing.
func Pricing() schema.Pricing {
	return schema.Pricing{
		Currency: "EUR", VATRate: "19.00",
		ServerTypes: []schema.PricingServerType{
			{ID: 1, Name: "cx22", Prices: []schema.PricingServerTypePrice{
				price("fsn1", "0.0060000000000000", "0.0071400000000000", "3.7900000000000000", "4.5101000000000000"),
				price("nbg1", "0.0060000000000000", "0.0071400000000000", "3.7900000000000000", "4.5101000000000000"),
			}},
			{ID: 22, Name: "cpx11", Prices: []schema.PricingServerTypePrice{
				price("fsn1", "0.0073000000000000", "0.0086870000000000", "4.4900000000000000", "5.3431000000000000"),
				price("hel1", "0.0073000000000000", "0.0086870000000000", "4.4900000000000000", "5.3431000000000000"),
			}},
			{ID: 104, Name: "cx23", Prices: []schema.PricingServerTypePrice{
				price("fsn1", "0.0056000000000000", "0.0066640000000000", "3.4900000000000000", "4.1531000000000000"),
				price("nbg1", "0.0056000000000000", "0.0066640000000000", "3.4900000000000000", "4.1531000000000000"),
				price("hel1", "0.0056000000000000", "0.0066640000000000", "3.4900000000000000", "4.1531000000000000"),
			}},
			{ID: 45, Name: "cax11", Prices: []schema.PricingServerTypePrice{
				price("fsn1", "0.0061000000000000", "0.0072590000000000", "3.7900000000000000", "4.5101000000000000"),
				price("nbg1", "0.0061000000000000", "0.0072590000000000", "3.7900000000000000", "4.5101000000000000"),
				price("hel1", "0.0061000000000000", "0.0072590000000000", "3.7900000000000000", "4.5101000000000000"),
			}},
			{ID: 96, Name: "ccx13", Prices: []schema.PricingServerTypePrice{
				price("fsn1", "0.0224000000000000", "0.0266560000000000", "13.9900000000000000", "16.6481000000000000"),
				price("ash", "0.0240000000000000", "0.0285600000000000", "14.8700000000000000", "17.6953000000000000"),
			}},
			{ID: 7, Name: "gone1", Prices: []schema.PricingServerTypePrice{ // priced but not listed: left out
				price("fsn1", "1.0000000000000000", "1.1900000000000000", "600.0000000000000000", "714.0000000000000000"),
			}},
		},
	}
}
