// Package planner is shardform's capacity planner: a pricing catalog of
// instance types, workload templates for game servers, fleet
// recommendations, node fitting and a consolidation report, as pure
// functions over plain data. It does no I/O: the API and the workers load
// catalogs, nodes and reservations from the store and hand them in.
//
// Units. CPU is counted in millicores, memory and disk in MiB (the API's
// "GB" figures are GiB, as Hetzner's and AWS's memory figures are). Money is
// an exact integer count of nano units of a currency (1e-9 EUR, 1e-9 USD):
// prices are parsed from decimal strings, never through float64, and rounded
// (half up) only where the package says so.
//
// Entry points: Snapshot and NewCatalog build a Catalog (Catalog.Filter
// lists prices); Templates and Template.Requirement turn a game and a player
// count into a Requirement; Recommend ranks fleets of one instance type for
// it; SuggestFit ranks an organization's nodes for one more instance; and
// BuildFleetReport finds nodes that could be emptied. Bad input is a
// *domain.ValidationError naming the request field.
//
// The catalog embedded in the binary (Snapshot) lets planning work without a
// cloud account; a live catalog read from a provider's API replaces a
// provider's part of it with Overlay.
package planner
