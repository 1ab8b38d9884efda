package bench

import (
	"net"
	"testing"
	"time"

	"github.com/shardform/shardform/api"
)

// listen serves srv on a loopback port until the benchmark ends and returns
// its base URL.
func listen(b *testing.B, srv *api.Server) string {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = srv.App().Listener(ln) }()
	b.Cleanup(func() { _ = srv.App().ShutdownWithTimeout(5 * time.Second) })
	return "http://" + ln.Addr().String()
}
