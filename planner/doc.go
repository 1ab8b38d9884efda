// Package planner will hold the capacity planner: pricing catalog,
// requirement fitting, bin packing and node scoring, as pure functions over
// plain data (no I/O, no database). It is filled by the capacity planner issue.
package planner
