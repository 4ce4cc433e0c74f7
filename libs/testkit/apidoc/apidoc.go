// Package apidoc holds a service to docs/openapi.yaml, the API document the gateway serves: CheckRoutes
// fails a test when the routes an app serves and the operations the document gives that service
// differ, and ValidateResponse (or Check) when a real answer has a status, header or body the document
// does not allow for its operation.
//
// An operation's `x-service` names the service that serves it. A list there marks a route libs/web
// mounts on every app (/healthz, /readyz, /metrics): an app must not serve it undocumented, but need
// not serve it, since which of them an app has depends on how it was built (telemetry or not, a
// separate internal listener). Routes with a wildcard (the gateway's `/api/*`) forward to other
// services, whose own apps are checked, so they are left out.
package apidoc

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/gofiber/fiber/v2"

	"limen/docs"
)

// CheckRoutes fails t for every route service's apps serve that docs/openapi.yaml does not give to
// service, and for every operation it gives to service alone that none of them serves. A service with
// a public and an internal listener (the gateway) passes both apps, or only the public one.
func CheckRoutes(t testing.TB, service string, apps ...*fiber.App) {
	t.Helper()
	if doc := loaded(t); doc != nil {
		doc.checkRoutes(t, service, apps...)
	}
}

// ValidateResponse fails t unless docs/openapi.yaml documents the operation req was sent to (matched by
// method and path; the host is ignored) with this status, and the header and body fit it.
func ValidateResponse(t testing.TB, req *http.Request, status int, header http.Header, body []byte) {
	t.Helper()
	if doc := loaded(t); doc != nil {
		doc.validateResponse(t, req, status, header, body)
	}
}

// Check is ValidateResponse for a response from app.Test or an http.Client; resp.Body is read and put
// back, so the caller reads it as if untouched.
func Check(t testing.TB, req *http.Request, resp *http.Response) {
	t.Helper()
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if err != nil {
		t.Errorf("apidoc: reading the answer to %s %s: %v", req.Method, req.URL.Path, err)
		return
	}
	ValidateResponse(t, req, resp.StatusCode, resp.Header, body)
}

// document is an API document ready for checking.
type document struct {
	spec   *openapi3.T
	router routers.Router
}

var loadOpenAPI = sync.OnceValues(func() (*document, error) { return parse(docs.OpenAPI) })

// loaded is docs/openapi.yaml, parsed and validated once per test binary; nil (t failed) if it is not
// a valid document.
func loaded(t testing.TB) *document {
	t.Helper()
	doc, err := loadOpenAPI()
	if err != nil {
		t.Errorf("apidoc: docs/openapi.yaml: %v", err)
		return nil
	}
	return doc
}

// parse loads and validates an OpenAPI document.
func parse(data []byte) (*document, error) {
	spec, err := openapi3.NewLoader().LoadFromData(data)
	if err != nil {
		return nil, err
	}
	if err := spec.Validate(context.Background()); err != nil {
		return nil, err
	}
	// Tests address their requests to whatever host they like: routing goes by path alone.
	spec.Servers = nil
	router, err := gorillamux.NewRouter(spec)
	if err != nil {
		return nil, err
	}
	return &document{spec: spec, router: router}, nil
}

// route is one method on one path, in the document's spelling (`{param}`, no trailing slash).
type route struct{ method, path string }

func (r route) String() string { return r.method + " " + r.path }

// operation is what the document says of one route: who serves it.
type operation struct {
	services []string
	// shared marks the routes every app may serve (x-service is a list).
	shared bool
}

func (d *document) operations() (map[route]operation, error) {
	out := map[route]operation{}
	for path, item := range d.spec.Paths.Map() {
		for method, op := range item.Operations() {
			r := route{method: method, path: path}
			switch v := op.Extensions["x-service"].(type) {
			case string:
				out[r] = operation{services: []string{v}}
			case []any:
				o := operation{shared: true}
				for _, s := range v {
					name, ok := s.(string)
					if !ok {
						return nil, fmt.Errorf("%s: x-service lists %v, not a service name", r, s)
					}
					o.services = append(o.services, name)
				}
				out[r] = o
			default:
				return nil, fmt.Errorf("%s: x-service must name the service that serves it, or list them", r)
			}
		}
	}
	return out, nil
}

func (d *document) checkRoutes(t testing.TB, service string, apps ...*fiber.App) {
	t.Helper()
	documented, err := d.operations()
	if err != nil {
		t.Errorf("apidoc: %v", err)
		return
	}
	served := servedRoutes(apps)
	var problems []string
	for r := range served {
		op, ok := documented[r]
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("%s is served by %s but is not in the API document", r, service))
		case !slices.Contains(op.services, service):
			problems = append(problems, fmt.Sprintf("%s is served by %s but the API document gives it to %s", r, service, strings.Join(op.services, ", ")))
		}
	}
	for r, op := range documented {
		if !op.shared && slices.Contains(op.services, service) && !served[r] {
			problems = append(problems, fmt.Sprintf("%s is in the API document for %s, which does not serve it", r, service))
		}
	}
	slices.Sort(problems)
	for _, p := range problems {
		t.Errorf("apidoc: %s", p)
	}
}

// fiberParam is a Fiber path parameter, with its optional constraint and `?`.
var fiberParam = regexp.MustCompile(`:([A-Za-z0-9_]+)(<[^>]*>)?\??`)

// servedRoutes are the apps' routes in the document's spelling. Middleware, the HEAD twin Fiber adds
// to every GET, and wildcard routes are left out.
func servedRoutes(apps []*fiber.App) map[route]bool {
	out := map[route]bool{}
	for _, app := range apps {
		for _, r := range app.GetRoutes(true) {
			if r.Method == fiber.MethodHead || strings.ContainsAny(r.Path, "*+") {
				continue
			}
			out[route{method: r.Method, path: fiberParam.ReplaceAllString(withoutTrailingSlash(r.Path), "{$1}")}] = true
		}
	}
	return out
}

// withoutTrailingSlash spells a path as the document does; Fiber's default (non-strict) routing
// answers both spellings alike.
func withoutTrailingSlash(path string) string {
	if len(path) > 1 {
		return strings.TrimSuffix(path, "/")
	}
	return path
}

func (d *document) validateResponse(t testing.TB, req *http.Request, status int, header http.Header, body []byte) {
	t.Helper()
	target := req.Clone(context.Background())
	target.URL = &url.URL{Path: withoutTrailingSlash(req.URL.Path), RawPath: withoutTrailingSlash(req.URL.RawPath), RawQuery: req.URL.RawQuery}
	target.Host = ""
	if req.Method == http.MethodHead {
		// Fiber answers HEAD wherever it answers GET, with no body to check.
		target.Method = http.MethodGet
	}
	found, params, err := d.router.FindRoute(target)
	if err != nil {
		t.Errorf("apidoc: %s %s is not in the API document: %v", req.Method, req.URL.Path, err)
		return
	}
	if req.Method == http.MethodHead {
		return
	}
	input := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: target, PathParams: params, Route: found},
		Status:                 status,
		Header:                 header,
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	input.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(context.Background(), input); err != nil {
		t.Errorf("apidoc: %s %s answered %d, which the API document (%s %s) does not allow: %v\nbody: %s",
			req.Method, req.URL.Path, status, found.Method, found.Path, err, excerpt(body))
	}
}

// excerpt is as much of a body as a failure message needs.
func excerpt(body []byte) []byte {
	const most = 1 << 10
	if len(body) > most {
		return append(body[:most:most], "..."...)
	}
	return body
}
