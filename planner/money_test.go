package planner

import (
	"errors"
	"testing"

	"github.com/shardform/shardform/domain"
)

func TestParseDecimal(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want int64
		err  bool
	}{
		{in: "4.5900", want: 4_590_000_000},
		{in: "0.0074000000", want: 7_400_000},
		{in: "12", want: 12_000_000_000},
		{in: "0.000000001", want: 1},
		{in: "-1.5", want: -1_500_000_000},
		{in: "9223372036.854775807", want: 9223372036854775807},
		{in: "0.1", want: 100_000_000}, // no float drift: exactly a tenth
		{in: "0.0000000001", err: true},
		{in: "9223372037", err: true},
		{in: "9223372036.854775808", err: true},
		{in: "", err: true},
		{in: ".5", err: true},
		{in: "5.", err: true},
		{in: "1e-3", err: true},
		{in: "1,5", err: true},
		{in: " 1", err: true},
		{in: "NaN", err: true},
		{in: "+1", err: true},
		{in: "--1", err: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := ParseDecimal(tt.in)
			if (err != nil) != tt.err || got != tt.want {
				t.Errorf("ParseDecimal(%q) = %d, %v", tt.in, got, err)
			}
			if err == nil {
				back, _ := ParseDecimal(FormatDecimal(got, 0))
				if back != got {
					t.Errorf("round trip %q → %q", tt.in, FormatDecimal(got, 0))
				}
			}
		})
	}
}

func TestMoneyArithmetic(t *testing.T) {
	t.Parallel()
	price := mustMoney(t, "0.0074", "EUR")
	month, err := price.Mul(HoursPerMonth)
	if err != nil || month.Amount() != "5.402" {
		t.Errorf("0.0074 × 730 = %s, %v", month, err)
	}
	// Summing 0.1 ten times is exactly 1 (it is not with float64).
	sum := Money{Currency: "EUR"}
	for range 10 {
		sum, _ = sum.Add(mustMoney(t, "0.1", "EUR"))
	}
	if sum.Nanos != NanosPerUnit {
		t.Errorf("sum %s", sum)
	}
	if _, err := price.Add(mustMoney(t, "1", "USD")); err == nil {
		t.Error("added EUR and USD")
	}
	if _, err := (Money{Nanos: 1 << 62, Currency: "EUR"}).Mul(4); !errors.Is(err, ErrOverflow) {
		t.Errorf("overflow: %v", err)
	}
	// Division rounds half up: 1 nano / 2 → 1; 1 nano / 3 → 0; -1/2 → -1.
	for _, tt := range []struct{ n, d, want int64 }{{1, 2, 1}, {1, 3, 0}, {5, 2, 3}, {-1, 2, -1}, {10, 4, 3}} {
		got, err := (Money{Nanos: tt.n, Currency: "EUR"}).Div(tt.d)
		if err != nil || got.Nanos != tt.want {
			t.Errorf("%d/%d = %d, %v", tt.n, tt.d, got.Nanos, err)
		}
	}
	if b, _ := mustMoney(t, "4.10", "EUR").MarshalJSON(); string(b) != `{"amount":"4.10","currency":"EUR"}` {
		t.Errorf("json %s", b)
	}
}

func TestRateTable(t *testing.T) {
	t.Parallel()
	rates := DefaultRates()
	tests := []struct {
		amount, from, to, want string
	}{
		{"1", "EUR", "USD", "1.16"},
		{"1.16", "USD", "EUR", "1.00"},
		{"10", "USD", "EUR", "8.620689655"}, // 10/1.16 = 8.6206896551…, half up at the 9th place
		{"1", "USD", "GBP", "0.75"},         // 0.87/1.16 exactly
		{"0.000000001", "USD", "EUR", "0.000000001"},
		{"0.0074", "EUR", "EUR", "0.0074"},
	}
	for _, tt := range tests {
		t.Run(tt.amount+tt.from+tt.to, func(t *testing.T) {
			t.Parallel()
			got, err := rates.Convert(mustMoney(t, tt.amount, tt.from), tt.to)
			if err != nil || got.Amount() != tt.want || got.Currency != tt.to {
				t.Errorf("convert = %s, %v; want %s %s", got, err, tt.want, tt.to)
			}
		})
	}
	if _, err := rates.Convert(mustMoney(t, "1", "EUR"), "JPY"); err == nil {
		t.Error("converted to JPY")
	}
	custom, err := NewRateTable("USD", map[string]string{"EUR": "0.8620"}, rates.AsOf, "config")
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := custom.Convert(mustMoney(t, "8.62", "EUR"), "USD"); got.Amount() != "10.00" {
		t.Errorf("custom %s", got)
	}
	if _, err := NewRateTable("USD", map[string]string{"EUR": "0"}, rates.AsOf, "config"); err == nil {
		t.Error("zero rate accepted")
	}
	used := rates.Used("EUR", "USD")
	if used.Rates["USD"] != "1.16" || used.Rates["EUR"] != "1" || used.Base != "EUR" || len(used.Rates) != 2 {
		t.Errorf("used %+v", used)
	}
}

// assertField checks err is a *domain.ValidationError on field.
func assertField(t *testing.T, err error, field string) {
	t.Helper()
	var ve *domain.ValidationError
	if !errors.As(err, &ve) {
		t.Errorf("want a validation error on %s, got %v", field, err)
		return
	}
	if ve.Field != field {
		t.Errorf("error on %q (%v), want %q", ve.Field, err, field)
	}
}
