package tfstate

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// Loopback serves the state endpoints to this process's own Terraform runs
// on 127.0.0.1 (a port of its own), authenticated by run credentials only:
// a worker needs no API process to reach, and the state never leaves the
// machine but to Postgres.
type Loopback struct {
	// Base is the endpoints' base URL (http://127.0.0.1:<port>); a
	// provision request's state is Base/<provision id>.
	Base string
	srv  *http.Server
}

// ServeLoopback starts the loopback server; it stops when ctx ends or at Close.
func ServeLoopback(ctx context.Context, svc *Service) (*Loopback, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("tfstate: loopback listener: %w", err)
	}
	l := &Loopback{
		Base: "http://" + ln.Addr().String(),
		srv: &http.Server{
			Handler:           Handler(svc, RunAuthenticator(svc)),
			ReadHeaderTimeout: 10 * time.Second,
			BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
		},
	}
	go func() {
		if err := l.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			svc.opts.Logger.Error("tfstate: loopback server stopped", "error", err)
		}
	}()
	context.AfterFunc(ctx, func() { _ = l.Close() })
	return l, nil
}

// Close stops the server, letting requests in flight finish (up to 10 s).
func (l *Loopback) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return l.srv.Shutdown(ctx)
}
