package planner

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"strings"
)

// NanosPerUnit is the number of Money nanos in one currency unit.
const NanosPerUnit = 1_000_000_000

// maxFractionDigits is the precision of Money: nine decimal places.
const maxFractionDigits = 9

// ErrOverflow reports an amount that does not fit in Money.
var ErrOverflow = errors.New("amount out of range")

// Money is an exact amount of one currency, in nano units (1e-9 of the
// currency unit). Arithmetic on Money is integer arithmetic: sums and
// products are exact, and the few divisions (currency conversion, per-unit
// shares) round half up once, where documented.
type Money struct {
	Nanos    int64
	Currency string // ISO 4217 code, upper case: "EUR", "USD"
}

// ParseDecimal parses a plain decimal string ("4.59", "0.0074000000", "12")
// into nanos without going through floating point. It accepts an optional
// leading minus sign and refuses exponents, spaces, thousands separators,
// values beyond nine significant decimal places and values out of range.
func ParseDecimal(s string) (int64, error) {
	orig := s
	neg := false
	if strings.HasPrefix(s, "-") {
		neg, s = true, s[1:]
	}
	intPart, frac, hasDot := strings.Cut(s, ".")
	if intPart == "" || (hasDot && frac == "") {
		return 0, fmt.Errorf("parse decimal %q: want digits[.digits]", orig)
	}
	if !allDigits(intPart) || !allDigits(frac) {
		return 0, fmt.Errorf("parse decimal %q: want digits[.digits]", orig)
	}
	trimmed := strings.TrimRight(frac, "0")
	if len(trimmed) > maxFractionDigits {
		return 0, fmt.Errorf("parse decimal %q: more than %d decimal places", orig, maxFractionDigits)
	}
	whole, err := strconv.ParseInt(intPart, 10, 64)
	if err != nil || whole > math.MaxInt64/NanosPerUnit {
		return 0, fmt.Errorf("parse decimal %q: %w", orig, ErrOverflow)
	}
	var f int64
	if trimmed != "" {
		f, _ = strconv.ParseInt(trimmed+strings.Repeat("0", maxFractionDigits-len(trimmed)), 10, 64)
	}
	n := whole*NanosPerUnit + f
	if n < 0 {
		return 0, fmt.Errorf("parse decimal %q: %w", orig, ErrOverflow)
	}
	if neg {
		n = -n
	}
	return n, nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// ParseMoney parses amount (see ParseDecimal) in currency.
func ParseMoney(amount, currency string) (Money, error) {
	if err := checkCurrency(currency); err != nil {
		return Money{}, err
	}
	n, err := ParseDecimal(amount)
	if err != nil {
		return Money{}, err
	}
	return Money{Nanos: n, Currency: currency}, nil
}

func checkCurrency(c string) error {
	if len(c) != 3 || c[0] < 'A' || c[0] > 'Z' || c[1] < 'A' || c[1] > 'Z' || c[2] < 'A' || c[2] > 'Z' {
		return fmt.Errorf("currency %q: want a three-letter upper-case ISO 4217 code", c)
	}
	return nil
}

// FormatDecimal renders nanos as a decimal string with at least minFrac and
// at most nine decimal places, trailing zeros beyond minFrac removed. It is
// exact: FormatDecimal then ParseDecimal gives back the same nanos.
func FormatDecimal(nanos int64, minFrac int) string {
	neg := nanos < 0
	u := uint64(nanos)
	if neg {
		u = -u
	}
	whole, frac := u/NanosPerUnit, u%NanosPerUnit
	fs := fmt.Sprintf("%09d", frac)
	keep := len(strings.TrimRight(fs, "0"))
	keep = max(keep, min(minFrac, maxFractionDigits))
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	b.WriteString(strconv.FormatUint(whole, 10))
	if keep > 0 {
		b.WriteByte('.')
		b.WriteString(fs[:keep])
	}
	return b.String()
}

// Amount is the exact decimal amount ("4.11", "0.0074").
func (m Money) Amount() string { return FormatDecimal(m.Nanos, 2) }

// String renders the exact amount and currency: "4.11 EUR".
func (m Money) String() string { return m.Amount() + " " + m.Currency }

// IsZero reports whether the amount is zero.
func (m Money) IsZero() bool { return m.Nanos == 0 }

// Add returns m+o. Both must be in the same currency (a zero Money with no
// currency takes o's).
func (m Money) Add(o Money) (Money, error) {
	if m.Currency == "" && m.Nanos == 0 {
		m.Currency = o.Currency
	}
	if m.Currency != o.Currency {
		return Money{}, fmt.Errorf("add %s to %s: currencies differ", o, m)
	}
	r := m.Nanos + o.Nanos
	if (m.Nanos > 0 && o.Nanos > 0 && r < 0) || (m.Nanos < 0 && o.Nanos < 0 && r >= 0) {
		return Money{}, fmt.Errorf("add %s to %s: %w", o, m, ErrOverflow)
	}
	return Money{Nanos: r, Currency: m.Currency}, nil
}

// Mul returns m×n exactly, or ErrOverflow.
func (m Money) Mul(n int64) (Money, error) {
	r, err := mulDivRound(m.Nanos, n, 1)
	if err != nil {
		return Money{}, fmt.Errorf("multiply %s by %d: %w", m, n, err)
	}
	return Money{Nanos: r, Currency: m.Currency}, nil
}

// Div returns m/n rounded half up (half away from zero for negative
// amounts). n must be positive.
func (m Money) Div(n int64) (Money, error) {
	if n <= 0 {
		return Money{}, fmt.Errorf("divide %s by %d: divisor must be positive", m, n)
	}
	r, err := mulDivRound(m.Nanos, 1, n)
	if err != nil {
		return Money{}, fmt.Errorf("divide %s by %d: %w", m, n, err)
	}
	return Money{Nanos: r, Currency: m.Currency}, nil
}

// Cmp compares two amounts of the same currency: -1, 0 or +1.
func (m Money) Cmp(o Money) int {
	switch {
	case m.Nanos < o.Nanos:
		return -1
	case m.Nanos > o.Nanos:
		return 1
	}
	return 0
}

// MarshalJSON renders {"amount":"4.11","currency":"EUR"}: the amount is a
// string so no client reads it through a float.
func (m Money) MarshalJSON() ([]byte, error) {
	return fmt.Appendf(nil, `{"amount":%q,"currency":%q}`, m.Amount(), m.Currency), nil
}

// UnmarshalJSON reads the form MarshalJSON writes; the amount must be a
// decimal string, never a JSON number.
func (m *Money) UnmarshalJSON(data []byte) error {
	var v struct {
		Amount   string `json:"amount"`
		Currency string `json:"currency"`
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return fmt.Errorf("money: %w", err)
	}
	p, err := ParseMoney(v.Amount, v.Currency)
	if err != nil {
		return fmt.Errorf("money: %w", err)
	}
	*m = p
	return nil
}

// mulDivRound returns a×b÷c rounded half away from zero, computed with a
// 128-bit intermediate product, or ErrOverflow when the result does not fit
// in an int64. c must be positive.
func mulDivRound(a, b, c int64) (int64, error) {
	if c <= 0 {
		return 0, fmt.Errorf("divisor %d: must be positive", c)
	}
	neg := (a < 0) != (b < 0)
	ua, ub := absU(a), absU(b)
	hi, lo := bits.Mul64(ua, ub)
	uc := uint64(c)
	if hi >= uc {
		return 0, ErrOverflow
	}
	q, rem := bits.Div64(hi, lo, uc)
	if rem >= uc-rem { // rem*2 >= c without overflow: round half up
		q++
	}
	if q > math.MaxInt64 {
		return 0, ErrOverflow
	}
	r := int64(q)
	if neg {
		r = -r
	}
	return r, nil
}

func absU(v int64) uint64 {
	if v < 0 {
		return -uint64(v)
	}
	return uint64(v)
}
