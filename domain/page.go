package domain

import "strconv"

// Paging limits of every list endpoint.
const (
	DefaultLimit = 20
	MaxLimit     = 100
)

// Page is a validated page request (1-based page).
type Page struct {
	Page  int32
	Limit int32
}

// Offset is the number of rows before the page.
func (p Page) Offset() int32 { return (p.Page - 1) * p.Limit }

// ParsePage validates the page and limit query parameters ("" means default).
func ParsePage(page, limit string) (Page, error) {
	p := Page{Page: 1, Limit: DefaultLimit}
	if page != "" {
		n, err := strconv.Atoi(page)
		if err != nil || n < 1 || n > 1_000_000 {
			return Page{}, Invalid("page", "must be a whole number from 1 to 1000000")
		}
		p.Page = int32(n)
	}
	if limit != "" {
		n, err := strconv.Atoi(limit)
		if err != nil || n < 1 || n > MaxLimit {
			return Page{}, Invalid("limit", "must be a whole number from 1 to %d", MaxLimit)
		}
		p.Limit = int32(n)
	}
	return p, nil
}
