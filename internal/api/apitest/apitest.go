// Package apitest checks the operations API against its OpenAPI
// document, for tests: every request a test sends and every response it
// gets are validated, so that the document cannot drift from the code.
package apitest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/cloudftpd/cloudftpd/internal/api"
)

func init() {
	// The document itself is served as YAML: a string to the validator.
	openapi3filter.RegisterBodyDecoder("application/yaml", func(r io.Reader, _ http.Header, _ *openapi3.SchemaRef, _ openapi3filter.EncodingFn) (any, error) {
		b, err := io.ReadAll(r)
		return string(b), err
	})
}

// Load parses and validates the embedded document.
func Load(ctx context.Context) (*openapi3.T, error) {
	doc, err := openapi3.NewLoader().LoadFromData(api.OpenAPI)
	if err != nil {
		return nil, fmt.Errorf("openapi.yaml: %w", err)
	}
	if err := doc.Validate(ctx); err != nil {
		return nil, fmt.Errorf("openapi.yaml: %w", err)
	}
	return doc, nil
}

// Client sends requests to an API at BaseURL ("http://127.0.0.1:8021")
// and validates them and their responses against the document.
type Client struct {
	t      testing.TB
	base   string
	http   *http.Client
	router routers.Router
	// unchecked skips the request's validation (its answer is still
	// validated), for requests that are wrong on purpose.
	unchecked bool
}

// Unchecked returns a Client that sends requests the document does not
// allow (bad JSON, unknown keys) to test the API's refusals; the
// responses are validated all the same.
func (c *Client) Unchecked() *Client {
	u := *c
	u.unchecked = true
	return &u
}

// New returns a Client for the API at base; hc nil is a plain client.
func New(t testing.TB, base string, hc *http.Client) *Client {
	t.Helper()
	doc, err := Load(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	// Route by path alone: the test server's port is not the document's.
	doc.Servers = openapi3.Servers{{URL: base}}
	r, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	if hc == nil {
		hc = &http.Client{}
	}
	return &Client{t: t, base: base, http: hc, router: r}
}

// Response is an answer, read whole.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Do sends method path with token ("" for none) and body (nil for
// none), validating both ways; a request or response the document does
// not describe fails the test. A transport error is returned, for tests
// that expect the connection to be refused.
func (c *Client) Do(method, path, token string, body []byte) (*Response, error) {
	c.t.Helper()
	hdr := http.Header{}
	if token != "" {
		hdr.Set("Authorization", "Bearer "+token)
	}
	return c.DoHeader(method, path, hdr, body)
}

// DoHeader is Do with the request's headers given whole (a console
// session's X-CSRF-Token, say; its cookie comes from the http.Client's
// jar).
func (c *Client) DoHeader(method, path string, hdr http.Header, body []byte) (*Response, error) {
	c.t.Helper()
	newReq := func() *http.Request {
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(body)
		}
		req, err := http.NewRequestWithContext(c.t.Context(), method, c.base+path, rd)
		if err != nil {
			c.t.Fatal(err)
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		for k, v := range hdr {
			req.Header[k] = v
		}
		return req
	}
	// The validator reads its own copy of the request.
	vreq := newReq()
	route, params, err := c.router.FindRoute(vreq)
	if err != nil {
		c.t.Fatalf("%s %s: not in openapi.yaml: %v", method, path, err)
	}
	in := &openapi3filter.RequestValidationInput{Request: vreq, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, IncludeResponseStatus: true, MultiError: true}}
	if err := openapi3filter.ValidateRequest(c.t.Context(), in); err != nil && !c.unchecked {
		c.t.Fatalf("%s %s: request does not match openapi.yaml: %v", method, path, err)
	}
	resp, err := c.http.Do(newReq())
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header,
		Body: io.NopCloser(bytes.NewReader(b)), Options: in.Options}
	if err := openapi3filter.ValidateResponse(c.t.Context(), out); err != nil {
		c.t.Fatalf("%s %s: response %d does not match openapi.yaml: %v\n%s", method, path, resp.StatusCode, err, b)
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: b}, nil
}

// Must is Do, failing the test on a transport error or a status other
// than want.
func (c *Client) Must(want int, method, path, token string, body []byte) *Response {
	c.t.Helper()
	r, err := c.Do(method, path, token, body)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	if r.Status != want {
		c.t.Fatalf("%s %s: status %d, want %d: %s", method, path, r.Status, want, r.Body)
	}
	return r
}

// MustHeader is DoHeader, failing the test on a transport error or a
// status other than want.
func (c *Client) MustHeader(want int, method, path string, hdr http.Header, body []byte) *Response {
	c.t.Helper()
	r, err := c.DoHeader(method, path, hdr, body)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	if r.Status != want {
		c.t.Fatalf("%s %s: status %d, want %d: %s", method, path, r.Status, want, r.Body)
	}
	return r
}
