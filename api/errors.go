package api

import (
	"errors"
	"log/slog"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/shardform/shardform/domain"
)

// errorBody is every error answer: {"error": "..."}.
type errorBody struct {
	Error string `json:"error"`
}

// statusOf maps a domain error to its HTTP status and the message the caller sees.
// It is the one place where errors become statuses.
func statusOf(err error) (int, string) {
	var verr *domain.ValidationError
	var rl *domain.RateLimitedError
	var ferr *fiber.Error
	var pub *domain.PublicError
	var grant *domain.GrantError
	msg := func(fallback string) string {
		if errors.As(err, &pub) {
			return pub.Message
		}
		return fallback
	}
	switch {
	case errors.As(err, &verr):
		return fiber.StatusBadRequest, verr.Error()
	case errors.As(err, &grant):
		return fiber.StatusBadRequest, grant.Code
	case errors.As(err, &rl):
		return fiber.StatusTooManyRequests, rl.Reason
	case errors.Is(err, domain.ErrNotFound):
		return fiber.StatusNotFound, msg("not found")
	case errors.Is(err, domain.ErrConflict):
		return fiber.StatusConflict, msg("conflict")
	case errors.Is(err, domain.ErrUnauthenticated):
		return fiber.StatusUnauthorized, msg("unauthenticated")
	case errors.Is(err, domain.ErrForbidden):
		return fiber.StatusForbidden, msg("forbidden")
	case errors.Is(err, domain.ErrUnprocessable):
		return fiber.StatusUnprocessableEntity, msg("unprocessable")
	case errors.Is(err, domain.ErrUnavailable):
		return fiber.StatusServiceUnavailable, msg("service unavailable")
	case errors.As(err, &ferr):
		switch ferr.Code {
		case fiber.StatusRequestEntityTooLarge:
			return ferr.Code, "request body too large"
		case fiber.StatusNotFound:
			return ferr.Code, "no such endpoint"
		case fiber.StatusMethodNotAllowed:
			if ferr.Message != "" && ferr.Message != "Method Not Allowed" {
				return ferr.Code, ferr.Message
			}
			return ferr.Code, "method not allowed"
		}
		if ferr.Code >= 500 {
			return fiber.StatusInternalServerError, "internal server error"
		}
		return ferr.Code, ferr.Message
	}
	return fiber.StatusInternalServerError, "internal server error"
}

// handleError is the app's fiber.Config.ErrorHandler.
func (s *Server) handleError(c *fiber.Ctx, err error) error {
	status, msg := statusOf(err)
	var rl *domain.RateLimitedError
	if errors.As(err, &rl) {
		c.Set(fiber.HeaderRetryAfter, strconv.Itoa(int(rl.RetryAfter.Seconds()+0.999)))
	}
	if status == fiber.StatusUnauthorized {
		c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="shardform"`)
	}
	if status >= 500 {
		s.log.ErrorContext(c.UserContext(), "request failed", slog.String("request_id", requestID(c)),
			slog.String("method", strings.Clone(c.Method())), slog.String("route", routeOf(c)), slog.Any("error", err))
	}
	return c.Status(status).JSON(errorBody{Error: msg})
}
