// Package domain holds the gateway's rules: which service answers a path (or the gateway itself),
// which paths are public and how long a service may take; and for the live status feed, who may see which VM event and which
// events are stale.
package domain

import (
	"errors"
	"net/url"
	"strings"
	"time"
)

// Upstream names a service behind the gateway.
type Upstream string

const (
	UpstreamAuth  Upstream = "auth"
	UpstreamVM    Upstream = "vm"
	UpstreamMedia Upstream = "media"
	UpstreamQuota Upstream = "quota"
	// UpstreamGateway is the gateway itself: a route it answers without asking any service. It is no
	// service, so Upstreams leaves it out.
	UpstreamGateway Upstream = "gateway"
)

// Upstreams lists every service, in the order health reports them.
var Upstreams = []Upstream{UpstreamAuth, UpstreamVM, UpstreamMedia, UpstreamQuota}

// The routes the gateway answers itself, to anyone (GET and HEAD only).
const (
	// HealthPath is the aggregated health of the services and the broker.
	HealthPath = "/api/health"
	// OpenAPIPath is the API document (docs/openapi.yaml) as JSON.
	OpenAPIPath = "/api/openapi.json"
	// DocsPath is a page that presents the API document; what the page loads is under DocsPath + "/".
	DocsPath = "/api/docs"
)

// AuthTimeout bounds calls to auth-service, which answers from its own database only.
const AuthTimeout = 10 * time.Second

// VMTimeout bounds calls to vm-service. A VM action answers only when it is done, and `stop` asks the
// guest to shut down gracefully, waiting up to about two minutes before forcing it off; the gateway
// must outlast that wait, or the client sees a 504 for a stop that then succeeds.
const VMTimeout = 150 * time.Second

var (
	// ErrNotRouted is a path no service answers (including everything under /internal).
	ErrNotRouted = errors.New("not routed")
	// ErrBadPath is a path that cannot be decoded or tries to climb out with dot segments.
	ErrBadPath = errors.New("bad path")
)

// Route is where one request goes.
type Route struct {
	Upstream Upstream
	// Public routes need no access token.
	Public bool
	// Timeout is the service's time limit; zero means the gateway's default. Uploads have their own.
	Timeout time.Duration
	// Upload routes carry a raw body of up to many GiB (an ISO image), streamed to the service as it
	// arrives instead of read whole first; exempt from the ordinary body limit, held to the upload
	// limit and the upload timeout instead. Uploads are admin-only, refused at the edge so that no
	// body is streamed for a caller the service would turn away.
	Upload bool
}

// isUpload reports whether the request is the ISO upload, POST /api/vms/isos: the only route whose
// body may exceed the ordinary limit.
func isUpload(method string, segments []string) bool {
	return method == "POST" && len(segments) == 3 && segments[0] == "api" && segments[1] == "vms" && segments[2] == "isos"
}

// Resolve routes a request by method and raw (still escaped) path.
func Resolve(method, rawPath string) (Route, error) {
	segments, err := segmentsOf(rawPath)
	if err != nil {
		return Route{}, err
	}
	if len(segments) < 2 || segments[0] != "api" {
		return Route{}, ErrNotRouted
	}
	rest := segments[1:]
	switch rest[0] {
	case "auth":
		public := len(rest) == 2 && (method == "POST" && (rest[1] == "register" || rest[1] == "login" || rest[1] == "refresh") ||
			method == "GET" && rest[1] == "jwks")
		return Route{Upstream: UpstreamAuth, Public: public, Timeout: AuthTimeout}, nil
	case "admin":
		return Route{Upstream: UpstreamAuth, Timeout: AuthTimeout}, nil
	case "vms":
		// /api/vms/isos is the ISO library, never a VM reference; /api/vms/{ref}/media is a VM's drive.
		if len(rest) >= 2 && rest[1] == "isos" || len(rest) == 3 && rest[2] == "media" {
			return Route{Upstream: UpstreamMedia, Upload: isUpload(method, segments)}, nil
		}
		return Route{Upstream: UpstreamVM, Timeout: VMTimeout}, nil
	case "snapshots":
		return Route{Upstream: UpstreamVM, Timeout: VMTimeout}, nil
	case "quota":
		return Route{Upstream: UpstreamQuota}, nil
	}
	switch "/api/" + rest[0] {
	case HealthPath, OpenAPIPath:
		return ownRoute(method, len(rest) == 1)
	case DocsPath:
		return ownRoute(method, len(rest) <= 2) // the page, or one of the files it loads
	}
	return Route{}, ErrNotRouted
}

// ownRoute is a route the gateway answers itself, if the path is one and the method reads it.
func ownRoute(method string, exists bool) (Route, error) {
	if exists && (method == "GET" || method == "HEAD") {
		return Route{Upstream: UpstreamGateway, Public: true}, nil
	}
	return Route{}, ErrNotRouted
}

// segmentsOf decodes the path and splits it, refusing dot segments (encoded or not) and empty ones
// other than a trailing slash, so that no spelling of a path reaches a service the plain one would not.
func segmentsOf(rawPath string) ([]string, error) {
	if !strings.HasPrefix(rawPath, "/") {
		return nil, ErrBadPath
	}
	decoded, err := url.PathUnescape(rawPath)
	if err != nil {
		return nil, ErrBadPath
	}
	segments := strings.Split(strings.TrimSuffix(decoded[1:], "/"), "/")
	for _, s := range segments {
		if s == "" || s == "." || s == ".." || strings.ContainsAny(s, "\\\x00") {
			return nil, ErrBadPath
		}
	}
	return segments, nil
}
