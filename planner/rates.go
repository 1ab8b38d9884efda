package planner

import (
	"fmt"
	"maps"
	"slices"
	"time"
)

// DefaultCurrency is the currency answers use when the request names none.
const DefaultCurrency = "EUR"

// RateTable converts between currencies through one base currency. Each rate
// says how many units of a currency one unit of Base buys, held exactly as
// nanos (1.16 USD per EUR is 1_160_000_000). A conversion from A to B
// multiplies by rate(B)/rate(A) as one exact fraction and rounds half up
// once, to the nano.
type RateTable struct {
	Base   string           // e.g. "EUR"; its own rate is 1
	Rates  map[string]int64 // currency → nanos of that currency per 1 Base
	AsOf   time.Time        // when the rates were observed
	Source string           // where they come from ("default", "config", an ECB file...)
}

// NewRateTable builds a table from decimal strings (currency → amount of it
// per one base unit) and validates it.
func NewRateTable(base string, rates map[string]string, asOf time.Time, source string) (RateTable, error) {
	if err := checkCurrency(base); err != nil {
		return RateTable{}, fmt.Errorf("rate table: %w", err)
	}
	t := RateTable{Base: base, Rates: make(map[string]int64, len(rates)+1), AsOf: asOf, Source: source}
	t.Rates[base] = NanosPerUnit
	for c, s := range rates {
		if err := checkCurrency(c); err != nil {
			return RateTable{}, fmt.Errorf("rate table: %w", err)
		}
		n, err := ParseDecimal(s)
		if err != nil {
			return RateTable{}, fmt.Errorf("rate table %s: %w", c, err)
		}
		if n <= 0 {
			return RateTable{}, fmt.Errorf("rate table %s: rate must be positive", c)
		}
		if c == base && n != NanosPerUnit {
			return RateTable{}, fmt.Errorf("rate table %s: the base currency's rate must be 1", c)
		}
		t.Rates[c] = n
	}
	return t, nil
}

// DefaultRates is the rate table used when the configuration gives none:
// EUR-based reference rates rounded to two decimals, as of the date below.
// They are good enough to compare providers, not to invoice; deployments set
// their own table.
func DefaultRates() RateTable {
	return RateTable{
		Base: "EUR",
		Rates: map[string]int64{
			"EUR": NanosPerUnit,
			"USD": 1_160_000_000,
			"GBP": 870_000_000,
			"CHF": 930_000_000,
		},
		AsOf:   time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC),
		Source: "default",
	}
}

// Knows reports whether the table can convert currency c.
func (t RateTable) Knows(c string) bool {
	_, ok := t.Rates[c]
	return ok
}

// Currencies lists the table's currencies in order.
func (t RateTable) Currencies() []string { return slices.Sorted(maps.Keys(t.Rates)) }

// Convert converts m into currency to, rounding half up once.
func (t RateTable) Convert(m Money, to string) (Money, error) {
	if m.Currency == to {
		return m, nil
	}
	from, ok := t.Rates[m.Currency]
	if !ok {
		return Money{}, fmt.Errorf("convert %s to %s: no rate for %s", m, to, m.Currency)
	}
	into, ok := t.Rates[to]
	if !ok {
		return Money{}, fmt.Errorf("convert %s to %s: no rate for %s", m, to, to)
	}
	n, err := mulDivRound(m.Nanos, into, from)
	if err != nil {
		return Money{}, fmt.Errorf("convert %s to %s: %w", m, to, err)
	}
	return Money{Nanos: n, Currency: to}, nil
}

// UsedRates is the part of a rate table an answer relied on, so every
// answer says how it converted.
type UsedRates struct {
	Base   string            `json:"base"`
	Rates  map[string]string `json:"rates"` // currency → units per 1 Base, exact decimal
	AsOf   time.Time         `json:"as_of"`
	Source string            `json:"source"`
}

// Used returns the table's entries for currencies.
func (t RateTable) Used(currencies ...string) UsedRates {
	u := UsedRates{Base: t.Base, Rates: map[string]string{}, AsOf: t.AsOf, Source: t.Source}
	for _, c := range currencies {
		if r, ok := t.Rates[c]; ok {
			u.Rates[c] = FormatDecimal(r, 0)
		}
	}
	return u
}
