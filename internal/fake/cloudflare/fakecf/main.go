// Command fakecf serves the local fake of Cloudflare's v4 API (package
// internal/fake/cloudflare) for trying shardform's DNS without a zone:
//
//	go run ./internal/fake/cloudflare/fakecf            # http://127.0.0.1:8787
//	SHARDFORM_CLOUDFLARE_ENDPOINT=http://127.0.0.1:8787 make run
//
// It holds one zone and accepts one token (flags change them); records
// live in memory until it stops.
package main

import (
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"time"

	cffake "github.com/shardform/shardform/internal/fake/cloudflare"
)

// The defaults the README's DNS walk-through uses.
const (
	DefaultZoneID = "023e105f4ecef8ad9ca31a8372d0c353"
	DefaultZone   = "example.com"
	DefaultToken  = "fake-cloudflare-token"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8787", "listen address")
	zone := flag.String("zone", DefaultZone, "the zone's name")
	zoneID := flag.String("zone-id", DefaultZoneID, "the zone's id (32 hexadecimal characters)")
	token := flag.String("token", DefaultToken, "the API token it accepts")
	flag.Parse()
	f := cffake.NewUnstarted()
	f.AddZone(*zoneID, *zone)
	f.AddToken(*token)
	fmt.Fprintf(os.Stderr, "fake Cloudflare API on http://%s: zone %s (%s), token %s\n", *addr, *zone, *zoneID, *token)
	srv := &http.Server{Addr: *addr, Handler: f, ReadHeaderTimeout: 10 * time.Second}
	log.Fatal(srv.ListenAndServe())
}
