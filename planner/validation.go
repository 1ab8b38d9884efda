package planner

import "github.com/shardform/shardform/domain"

// invalid returns a *domain.ValidationError naming the request field, which
// the API maps to 400.
func invalid(field, rule string, args ...any) error { return domain.Invalid(field, rule, args...) }
