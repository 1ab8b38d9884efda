package api_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/shardform/shardform/api"
)

// contract checks answers against the OpenAPI document the server serves:
// every API test that goes through bundle.do is also a test that the
// document tells the truth about status codes, content types and bodies.
type contract struct {
	once   sync.Once
	router routers.Router
	err    error
}

// testDocs is every test server's OpenAPI document, built once per set of
// routes, and contractRouters the documents' parsed routers by the
// document's bytes: under -race a document and its router take seconds
// each, and most tests' servers serve the same routes.
var (
	testDocs        = api.NewDocs()
	contractRouters sync.Map // [sha256.Size]byte → *routerEntry
)

type routerEntry struct {
	once   sync.Once
	router routers.Router
	err    error
}

func (c *contract) load(srv *api.Server) (routers.Router, error) {
	c.once.Do(func() {
		resp, err := srv.App().Test(httptest.NewRequest("GET", "/openapi.json", nil), -1)
		if err != nil {
			c.err = err
			return
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			c.err = fmt.Errorf("GET /openapi.json: %d %s", resp.StatusCode, raw)
			return
		}
		v, _ := contractRouters.LoadOrStore(sha256.Sum256(raw), &routerEntry{})
		e := v.(*routerEntry)
		e.once.Do(func() {
			doc, err := openapi3.NewLoader().LoadFromData(raw)
			if err != nil {
				e.err = err
				return
			}
			doc.Servers = openapi3.Servers{{URL: "http://example.com"}} // httptest.NewRequest's host
			e.router, e.err = gorillamux.NewRouter(doc)
		})
		c.router, c.err = e.router, e.err
	})
	return c.router, c.err
}

// check validates one answer. A request the document has no operation for
// must have been answered 404 or 405 (no such endpoint).
func (c *contract) check(srv *api.Server, method, target string, status int, header http.Header, body []byte) error {
	router, err := c.load(srv)
	if err != nil {
		return fmt.Errorf("contract: %w", err)
	}
	hr := httptest.NewRequest(method, target, nil)
	route, params, err := router.FindRoute(hr)
	if err != nil {
		if status == http.StatusNotFound || status == http.StatusMethodNotAllowed {
			return nil
		}
		return fmt.Errorf("contract: %s %s answered %d but the OpenAPI document has no such operation: %v", method, target, status, err)
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: hr, PathParams: params, Route: route},
		Status:                 status,
		Header:                 header,
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	if ct := header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") && !strings.HasPrefix(ct, "application/yaml") && !strings.HasPrefix(ct, "text/plain") {
		in.Options.ExcludeResponseBody = true // pages and scripts: the content type is checked, not the bytes
	}
	in.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		short := string(body)
		if len(short) > 300 {
			short = short[:300] + "..."
		}
		return fmt.Errorf("contract: %s %s → %d does not match the OpenAPI document: %v\nbody: %s", method, target, status, strings.TrimSpace(err.Error()), bytes.TrimSpace([]byte(short)))
	}
	return nil
}
