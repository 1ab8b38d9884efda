package api

import (
	"context"
	"net/http"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
)

// netHTTP serves a net/http handler (River UI, the state endpoints,
// /metrics) from Fiber. fasthttp's adaptor makes the request's context the
// fasthttp request itself, whose Done reads the server's shutdown channel
// unsynchronized: a context derived from it (River UI's per-request
// timeout, pgx's context watcher) races with the server's Shutdown, as the
// race detector reports. The handler gets a context with the request's
// values and no cancellation (fasthttp never cancels a request anyway).
func netHTTP(h http.Handler) fiber.Handler {
	return adaptor.HTTPHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r.WithContext(context.WithoutCancel(r.Context())))
	}))
}
