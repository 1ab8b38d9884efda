// Package domain holds the types every layer of shardform shares: the errors
// domain code returns (mapped to HTTP statuses in one place, the api package),
// the permission catalog with its roles, and the Principal a request acts as.
// It has no dependencies on the database, HTTP or any cloud.
package domain
