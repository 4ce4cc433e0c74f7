// Package http is the gateway's Fiber port: authentication, header hygiene, proxying to the services,
// the aggregated health endpoint, the live status WebSocket and the API document.
package http

import (
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/utils"
	"github.com/valyala/fasthttp"

	"limen/gateway/internal/domain"
	"limen/libs/telemetry"
	"limen/libs/web"
)

// Default upload limits (LIMEN_UPLOAD_LIMIT, LIMEN_UPLOAD_TIMEOUT).
const (
	DefaultUploadLimit   = 16 << 30
	DefaultUploadTimeout = 2 * time.Hour
)

// Proxy routes /api requests to the services (Handler): it resolves the request, checks its token
// unless the route is public, and passes it on.
type Proxy struct {
	DefaultTimeout time.Duration
	// UploadLimit caps an upload's Content-Length (413 beyond it, before the service is contacted);
	// UploadTimeout bounds the whole upload, body and answer.
	UploadLimit   int64
	UploadTimeout time.Duration
	// upstreams are the deployed services; a missing one answers 503.
	upstreams map[domain.Upstream]upstream
}

// upstream is one service: its base URL and a pooled keep-alive client of its own (a
// fasthttp.Client would look the host up again on every request).
type upstream struct {
	base, scheme, host string
	// path is the base URL's path, which goes in front of every target; usually empty.
	path   string
	client *fasthttp.HostClient
}

// NewProxy keeps one pooled keep-alive client per service, from its base URL; uploads get the
// default limits.
func NewProxy(bases map[domain.Upstream]string, defaultTimeout time.Duration) *Proxy {
	p := &Proxy{DefaultTimeout: defaultTimeout, UploadLimit: DefaultUploadLimit, UploadTimeout: DefaultUploadTimeout,
		upstreams: map[domain.Upstream]upstream{}}
	for name, base := range bases {
		var uri fasthttp.URI
		_ = uri.Parse(nil, []byte(base))
		isTLS := string(uri.Scheme()) == "https"
		p.upstreams[name] = upstream{base: base, scheme: string(uri.Scheme()), host: string(uri.Host()),
			path: strings.TrimSuffix(string(uri.PathOriginal()), "/"), client: &fasthttp.HostClient{
				Addr:                          fasthttp.AddMissingPort(string(uri.Host()), isTLS),
				IsTLS:                         isTLS,
				MaxConns:                      1024,
				MaxIdleConnDuration:           90 * time.Second,
				ReadTimeout:                   0, // bounded per request by DoTimeout
				NoDefaultUserAgentHeader:      true,
				DisableHeaderNamesNormalizing: true,
				DisablePathNormalizing:        true,
			}}
	}
	return p
}

// Handler serves every /api route Mount leaves to the services: public routes, and every OPTIONS
// request, go on without a token (CORS answers preflights before they get here); the others need
// one, checked as auth checks it.
func (p *Proxy) Handler(auth Authentication) fiber.Handler {
	return func(c *fiber.Ctx) error {
		route, err := domain.Resolve(c.Method(), utils.UnsafeString(c.Request().URI().PathOriginal()))
		switch {
		case errors.Is(err, domain.ErrBadPath):
			return web.NewError(http.StatusBadRequest, "Invalid path")
		case err != nil, route.Upstream == domain.UpstreamGateway:
			// The gateway's own routes are mounted ahead of the proxy, and the router matches raw paths:
			// one that reaches the proxy is spelled otherwise (percent-encoded), and no service answers it.
			return web.NewError(http.StatusNotFound, "Not found")
		}
		if route.Public || c.Method() == fiber.MethodOptions {
			return p.forward(c, route, nil)
		}
		who, err := auth.check(c)
		if err != nil {
			return err
		}
		return p.forward(c, route, &who)
	}
}

// forward passes the request on to route's service; who is nil when it went on without a token.
func (p *Proxy) forward(c *fiber.Ctx, route domain.Route, who *caller) error {
	if who != nil && route.Upload && !who.claims.IsAdmin() {
		return web.NewError(http.StatusForbidden, "Admin access required")
	}
	up, ok := p.upstreams[route.Upstream]
	if !ok {
		return web.NewError(http.StatusServiceUnavailable, "Service unavailable")
	}
	scratch := scratchPool.Get().(*[]byte)
	defer scratchPool.Put(scratch)
	prepareHeaders(c, who, scratch)
	timeout := route.Timeout
	if timeout == 0 {
		timeout = p.DefaultTimeout
	}
	var err error
	if route.Upload {
		err = p.upload(c, up.base+string(appendOriginForm(nil, c)))
	} else {
		err = up.do(c, timeout, scratch)
	}
	if err != nil {
		return forwardError(err, route.Upstream)
	}
	// The service's answer replaced ours, with its names spelled as the service spelled them. The
	// gateway alone speaks CORS (CORS), and the request id is the one it gave the request, once.
	answer := &c.Response().Header
	cleanAnswer(answer)
	answer.SetBytesV(web.HeaderRequestID, c.Request().Header.Peek(web.HeaderRequestID))
	return nil
}

// forwardError is the answer to a request the service did not answer.
func forwardError(err error, to domain.Upstream) error {
	var werr *web.Error
	switch {
	case errors.As(err, &werr):
		return err
	case errors.Is(err, fasthttp.ErrTimeout):
		return web.NewError(http.StatusGatewayTimeout, "Upstream timeout")
	}
	return &web.Error{Code: http.StatusBadGateway, Message: "Service unavailable", Detail: "upstream " + string(to) + " did not answer"}
}

// scratchPool holds buffers for what forward writes per request (a bearer token; with a base URL
// that has a path, the target URL and the request's own target kept to restore it), so that a
// proxied request allocates none.
var scratchPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// do sends c's request to the service and puts the answer in c's response. The request goes as Fiber
// parsed it, which nothing on the proxy's path parses again: fasthttp writes its target from the
// parsed URI (the path and query as the client wrote them, and so a request line in absolute form
// in origin form), with the service as its host.
func (u upstream) do(c *fiber.Ctx, timeout time.Duration, scratch *[]byte) error {
	if u.path != "" {
		return u.doBelowPath(c, timeout, scratch)
	}
	req := c.Request()
	// A request that came over TLS has https as its scheme, whatever the service speaks.
	if uri := req.URI(); string(uri.Scheme()) != u.scheme {
		uri.SetScheme(u.scheme)
	}
	req.Header.SetHost(u.host)
	req.UseHostHeader = true
	return u.client.DoTimeout(req, c.Response(), timeout)
}

// doBelowPath is do for a service whose base URL has a path: the request's target becomes the whole
// URL for the time of the call, then is restored for the middleware that still reads it.
func (u upstream) doBelowPath(c *fiber.Ctx, timeout time.Duration, scratch *[]byte) error {
	req := c.Request()
	buf := append((*scratch)[:0], req.Header.RequestURI()...)
	original := len(buf)
	buf = append(buf, u.base...)
	buf = appendOriginForm(buf, c)
	*scratch = buf
	req.SetRequestURIBytes(buf[original:])
	req.URI().SetScheme(u.scheme)
	err := u.client.DoTimeout(req, c.Response(), timeout)
	req.SetRequestURIBytes(buf[:original])
	return err
}

// appendOriginForm appends the request's target as the service is asked for it: path and query as
// the client wrote them. A request line in absolute form (`GET http://host/api/vms`, which RFC 9112
// 3.2.2 has servers accept) is reduced to its origin form (`/api/vms`); appended whole to the
// service's base URL it made no URL at all (502).
func appendOriginForm(dst []byte, c *fiber.Ctx) []byte {
	if uri := c.Request().Header.RequestURI(); len(uri) > 0 && uri[0] == '/' {
		return append(dst, uri...)
	}
	u := c.Request().URI()
	if path := u.PathOriginal(); len(path) > 0 {
		dst = append(dst, path...)
	} else {
		dst = append(dst, '/')
	}
	if q := u.QueryString(); len(q) > 0 {
		dst = append(append(dst, '?'), q...)
	}
	return dst
}

// IsUpload tells web.NewApp (AppConfig.Upload) which requests are streamed uploads: those the
// domain routes as one.
func IsUpload(c *fiber.Ctx) bool {
	if c.Method() != domain.UploadMethod {
		return false // resolved once, by the proxy
	}
	route, err := domain.Resolve(c.Method(), utils.UnsafeString(c.Request().URI().PathOriginal()))
	return err == nil && route.Upload
}

// untrustedPrefixes are identity and forwarding headers only the gateway may set.
var untrustedPrefixes = newFoldSet("x-forwarded-", "x-real-ip", "forwarded", "x-user-", "x-limen-", "x-internal-")

var hopByHop = newFoldSet("Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Proxy-Connection", "Te", "Trailer", "Upgrade")

// answeredHere are request headers the gateway has acted on itself: it already told the client to
// go on with its body.
var answeredHere = []string{"Expect"}

// notForwarded are the request headers dropped by their canonical name (Del): hopByHop, then
// answeredHere.
var notForwarded = newFoldSet(append(slices.Clip(hopByHop.names), answeredHere...)...)

// prepareHeaders drops what a client must not decide and adds what the services may trust: who the
// client is, and the access token as a bearer token (who is nil without one). The headers are looked
// at in one pass; only those present are deleted.
func prepareHeaders(c *fiber.Ctx, who *caller, scratch *[]byte) {
	// Who the client is, as the peer or a trusted proxy in front of the gateway says (never what an
	// untrusted client wrote); read before the forwarding headers are dropped.
	var hostBuf [256]byte
	ip, proto, host := web.AppendClient(c, hostBuf[:0])
	h := &c.Request().Header
	var dropBuf [8][]byte
	drop, canonical := dropBuf[:0], uint32(0)
	for key := range h.All() {
		if i := notForwarded.index(key); i >= 0 {
			canonical |= 1 << i
		} else if untrustedPrefixes.prefixOf(key) {
			// The keys stay where they are until the deletions below, which copy the name first.
			drop = append(drop, key)
		}
	}
	for _, k := range drop {
		h.DelBytes(k)
	}
	for i, k := range notForwarded.names {
		if canonical&(1<<i) != 0 {
			h.Del(k)
		}
	}
	// The services read bearer tokens only; a browser session's comes from its cookie.
	if who != nil && who.fromCookie {
		*scratch = append(append((*scratch)[:0], "Bearer "...), who.token...)
		h.SetBytesV(fiber.HeaderAuthorization, *scratch)
	}
	// The services believe these from the gateway only: each is replaced, never appended to.
	var ipBuf [64]byte
	h.SetCanonical(xForwardedFor, web.AppendIP(ipBuf[:0], ip))
	h.SetCanonical(xForwardedProto, utils.UnsafeBytes(proto))
	h.SetCanonical(xForwardedHost, host)
	// Continue the gateway's trace in the service.
	telemetry.InjectInto(c.UserContext(), h)
}

// The forwarding headers' names, spelled as fasthttp keeps them, for SetCanonical.
var (
	xForwardedFor   = []byte(fiber.HeaderXForwardedFor)
	xForwardedProto = []byte(fiber.HeaderXForwardedProto)
	xForwardedHost  = []byte(fiber.HeaderXForwardedHost)
)

// cleanAnswer drops from a service's answer the hop-by-hop headers, CORS's (the gateway's own are
// added by CORS) and the service's request id, however the service spelled them, in one pass over
// its headers.
func cleanAnswer(h *fasthttp.ResponseHeader) {
	var dropBuf [8][]byte
	drop, canonical := dropBuf[:0], uint32(0)
	for key := range h.All() {
		i := hopByHop.index(key)
		if i >= 0 {
			// Also by its canonical name, which clears what fasthttp keeps beside the line (Connection:
			// close, the trailers).
			canonical |= 1 << i
		}
		if i >= 0 && string(key) != hopByHop.names[i] || corsHeaders.prefixOf(key) || equalFold(key, web.HeaderRequestID) {
			drop = append(drop, key)
		}
	}
	// By the name as the service spelled it, which is how the answer keeps it.
	for _, k := range drop {
		h.DelBytes(k)
	}
	for i, k := range hopByHop.names {
		if canonical&(1<<i) != 0 {
			h.Del(k)
		}
	}
}

// foldSet is a few header names or name prefixes, matched in any letter case; a name whose first
// letter none of them starts with is passed over at once.
type foldSet struct {
	names  []string
	starts [256]bool
}

func newFoldSet(names ...string) *foldSet {
	s := &foldSet{names: names}
	for _, name := range names {
		s.starts[name[0]|0x20], s.starts[name[0]&^0x20] = true, true
	}
	return s
}

// index is the index of the name key is, or -1.
func (s *foldSet) index(key []byte) int {
	if len(key) == 0 || !s.starts[key[0]] {
		return -1
	}
	for i, name := range s.names {
		if equalFold(key, name) {
			return i
		}
	}
	return -1
}

// prefixOf reports whether key starts with one of the set.
func (s *foldSet) prefixOf(key []byte) bool {
	if len(key) == 0 || !s.starts[key[0]] {
		return false
	}
	for _, prefix := range s.names {
		if len(key) >= len(prefix) && equalFold(key[:len(prefix)], prefix) {
			return true
		}
	}
	return false
}

// equalFold is strings.EqualFold for a header name in a fasthttp buffer, which it does not copy.
func equalFold(key []byte, name string) bool {
	return len(key) == len(name) && strings.EqualFold(utils.UnsafeString(key), name)
}
