package dashboard

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"
)

// APIError is an answer of the /v1 API that is not a success: its status
// and the API's own message, which the dashboard shows as it is.
type APIError struct {
	Status  int
	Message string
}

func (e *APIError) Error() string { return fmt.Sprintf("%d: %s", e.Status, e.Message) }

// formRefusal is an API refusal a form shows with the API's message and
// status (a bad value, a conflict, a missing permission), not a signed-out
// session or a server failure, which fail the page.
func formRefusal(err error) (*APIError, bool) {
	var aerr *APIError
	if errors.As(err, &aerr) && aerr.Status < 500 && aerr.Status != http.StatusUnauthorized {
		return aerr, true
	}
	return nil, false
}

// errSignedOut: the session's tokens are gone or no longer accepted.
var errSignedOut = errors.New("signed out")

// call is one request to the /v1 API, in process: the API's own handler
// (authentication, the organization, permission checks, validation, rate
// limits, audit log) answers it exactly as it answers the CLI. The
// dashboard has no other way to the data.
type call struct {
	method string
	path   string // /v1/...; a query may follow
	query  url.Values
	body   any // JSON-encoded when not nil
	out    any // the JSON answer is decoded into it when not nil
	// anonymous: no credential is sent (sign-in, refresh, sign-out).
	anonymous bool
}

// do sends a call with the session's access token and organization. A 401
// with a refresh token in the session refreshes the session (new cookies)
// and sends the call once more; a 401 after that is errSignedOut.
func (d *Dashboard) do(c *fiber.Ctx, s *session, k call) error {
	status, body, err := d.send(c, s, k)
	if err != nil {
		return err
	}
	if status == http.StatusUnauthorized && !k.anonymous {
		if s.refresh == "" || !d.refresh(c, s) {
			return errSignedOut
		}
		if status, body, err = d.send(c, s, k); err != nil {
			return err
		}
		if status == http.StatusUnauthorized {
			return errSignedOut
		}
	}
	if status >= 300 {
		return apiError(status, body)
	}
	if k.out != nil && len(body) > 0 {
		if err := json.Unmarshal(body, k.out); err != nil {
			return fmt.Errorf("decode %s %s: %w", k.method, k.path, err)
		}
	}
	return nil
}

func apiError(status int, body []byte) *APIError {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(body, &e) != nil || e.Error == "" {
		e.Error = http.StatusText(status)
	}
	return &APIError{Status: status, Message: e.Error}
}

// request builds the in-process request of a call.
func (d *Dashboard) request(c *fiber.Ctx, s *session, k call) (*fasthttp.Request, error) {
	if !strings.HasPrefix(k.path, "/v1/") {
		return nil, fmt.Errorf("dashboard call outside the API: %s", k.path)
	}
	req := fasthttp.AcquireRequest()
	req.Header.SetMethod(k.method)
	uri := k.path
	if len(k.query) > 0 {
		uri += "?" + k.query.Encode()
	}
	req.SetRequestURI(uri)
	req.Header.SetHost(string(c.Request().Host()))
	req.Header.Set("User-Agent", "shardform-dashboard")
	if id := c.GetRespHeader("X-Request-ID"); id != "" {
		req.Header.Set("X-Request-ID", id)
	}
	if !k.anonymous {
		if s.access != "" {
			req.Header.Set(fiber.HeaderAuthorization, "Bearer "+s.access)
		}
		if s.org != "" {
			req.Header.Set("X-Organization-ID", s.org)
		}
	}
	if k.body != nil {
		b, err := json.Marshal(k.body)
		if err != nil {
			fasthttp.ReleaseRequest(req)
			return nil, fmt.Errorf("encode %s %s: %w", k.method, k.path, err)
		}
		req.Header.SetContentType(fiber.MIMEApplicationJSON)
		req.SetBody(b)
	}
	return req, nil
}

// send runs the API's handler on the call and returns its answer.
func (d *Dashboard) send(c *fiber.Ctx, s *session, k call) (int, []byte, error) {
	req, err := d.request(c, s, k)
	if err != nil {
		return 0, nil, err
	}
	defer fasthttp.ReleaseRequest(req)
	var fctx fasthttp.RequestCtx
	fctx.Init(req, c.Context().RemoteAddr(), nil)
	d.cfg.API(&fctx)
	return fctx.Response.StatusCode(), bytes.Clone(fctx.Response.Body()), nil
}

// stream runs the API's handler on a call answered with a Server-Sent
// Events stream and returns the stream (the caller closes it). A call
// answered otherwise is an error.
func (d *Dashboard) stream(c *fiber.Ctx, s *session, k call) (io.ReadCloser, error) {
	for attempt := 0; ; attempt++ {
		req, err := d.request(c, s, k)
		if err != nil {
			return nil, err
		}
		fctx := &fasthttp.RequestCtx{}
		fctx.Init(req, c.Context().RemoteAddr(), nil)
		fasthttp.ReleaseRequest(req)
		d.cfg.API(fctx)
		status := fctx.Response.StatusCode()
		if status == http.StatusUnauthorized && attempt == 0 && s.refresh != "" && d.refresh(c, s) {
			continue
		}
		if status == http.StatusUnauthorized {
			return nil, errSignedOut
		}
		if status >= 300 {
			return nil, apiError(status, fctx.Response.Body())
		}
		r := fctx.Response.BodyStream()
		if r == nil {
			return io.NopCloser(bytes.NewReader(bytes.Clone(fctx.Response.Body()))), nil
		}
		rc, ok := r.(io.ReadCloser)
		if !ok {
			rc = io.NopCloser(r)
		}
		return rc, nil
	}
}
