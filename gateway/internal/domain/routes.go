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

// UploadMethod is the method of the one upload route.
const UploadMethod = "POST"

// isUpload reports whether the request is the ISO upload, POST /api/vms/isos: the only route whose
// body may exceed the ordinary limit.
func isUpload(method string, p path) bool {
	return method == UploadMethod && p.n == 3 && p.at(0) == "api" && p.at(1) == "vms" && p.at(2) == "isos"
}

// Resolve routes a request by method and raw (still escaped) path.
func Resolve(method, rawPath string) (Route, error) {
	p, err := parsePath(rawPath)
	if err != nil {
		return Route{}, err
	}
	if p.n < 2 || p.at(0) != "api" {
		return Route{}, ErrNotRouted
	}
	// rest is the path after /api: p.at(1) is its first segment, and there are p.n-1 of them.
	rest := p.n - 1
	switch p.at(1) {
	case "auth":
		// Logging out of a browser session must work once its access token has expired: auth-service
		// ends it by its refresh cookie.
		public := rest == 2 && (method == "POST" && (p.at(2) == "register" || p.at(2) == "login" || p.at(2) == "refresh") ||
			method == "GET" && p.at(2) == "jwks" || method == "DELETE" && p.at(2) == "session")
		return Route{Upstream: UpstreamAuth, Public: public, Timeout: AuthTimeout}, nil
	case "admin":
		// Every user's quota is quota-service's; the rest of /api/admin is the accounts.
		if rest >= 2 && p.at(2) == "quotas" {
			return Route{Upstream: UpstreamQuota}, nil
		}
		return Route{Upstream: UpstreamAuth, Timeout: AuthTimeout}, nil
	case "vms":
		// /api/vms/isos is the ISO library, never a VM reference; /api/vms/{ref}/media is a VM's drive.
		if rest >= 2 && p.at(2) == "isos" || rest == 3 && p.at(3) == "media" {
			return Route{Upstream: UpstreamMedia, Upload: isUpload(method, p)}, nil
		}
		return Route{Upstream: UpstreamVM, Timeout: VMTimeout}, nil
	case "snapshots":
		return Route{Upstream: UpstreamVM, Timeout: VMTimeout}, nil
	case "quota":
		return Route{Upstream: UpstreamQuota}, nil
	}
	switch "/api/" + p.at(1) {
	case HealthPath, OpenAPIPath:
		return ownRoute(method, rest == 1)
	case DocsPath:
		return ownRoute(method, rest <= 2) // the page, or one of the files it loads
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

// path is a decoded request path, split into segments: the first few of them and how many there are
// (Resolve looks no further), without allocating for the usual path that needs no decoding.
type path struct {
	first [4]string
	n     int
}

// at is the i-th segment, or "" past the end or beyond the first few.
func (p path) at(i int) string {
	if i < len(p.first) {
		return p.first[i]
	}
	return ""
}

// parsePath decodes the path and splits it, refusing dot segments (encoded or not) and empty ones
// other than a trailing slash, so that no spelling of a path reaches a service the plain one would not.
func parsePath(rawPath string) (path, error) {
	if !strings.HasPrefix(rawPath, "/") {
		return path{}, ErrBadPath
	}
	decoded, err := url.PathUnescape(rawPath)
	if err != nil {
		return path{}, ErrBadPath
	}
	var p path
	rest := strings.TrimSuffix(decoded[1:], "/")
	for {
		s, after, more := strings.Cut(rest, "/")
		if s == "" || s == "." || s == ".." || strings.ContainsAny(s, "\\\x00") {
			return path{}, ErrBadPath
		}
		if p.n < len(p.first) {
			p.first[p.n] = s
		}
		p.n++
		if !more {
			return p, nil
		}
		rest = after
	}
}
