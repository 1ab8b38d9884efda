// Package walkthrough holds a test that runs the README's walk-throughs, as
// written, against a freshly built shardform serving an empty database.
package walkthrough
