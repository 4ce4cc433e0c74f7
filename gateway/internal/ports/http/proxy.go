// Package http is the gateway's Fiber port: authentication, header hygiene, proxying to the services,
// the aggregated health endpoint, the live status WebSocket and the API document.
package http

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/proxy"
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

// Proxy routes /api requests to the services: Route resolves the request, Authenticate checks its
// token unless the route is public (tokenOptional), Forward passes it on.
type Proxy struct {
	// Bases maps each deployed service to its base URL; a missing one answers 503.
	Bases          map[domain.Upstream]string
	DefaultTimeout time.Duration
	// UploadLimit caps an upload's Content-Length (413 beyond it, before the service is contacted);
	// UploadTimeout bounds the whole upload, body and answer.
	UploadLimit   int64
	UploadTimeout time.Duration
	client        *fasthttp.Client
}

// NewProxy keeps one pooled keep-alive client for all services; uploads get the default limits.
func NewProxy(bases map[domain.Upstream]string, defaultTimeout time.Duration) *Proxy {
	return &Proxy{Bases: bases, DefaultTimeout: defaultTimeout,
		UploadLimit: DefaultUploadLimit, UploadTimeout: DefaultUploadTimeout, client: &fasthttp.Client{
			MaxConnsPerHost:               1024,
			MaxIdleConnDuration:           90 * time.Second,
			ReadTimeout:                   0, // bounded per request by DoTimeout
			NoDefaultUserAgentHeader:      true,
			DisableHeaderNamesNormalizing: true,
			DisablePathNormalizing:        true,
		}}
}

// localRoute is the Fiber local under which Route hands the resolved route on.
const localRoute = "limen.route"

// Route resolves the request to the service that answers it, for tokenOptional and Forward.
func (p *Proxy) Route(c *fiber.Ctx) error {
	route, err := domain.Resolve(c.Method(), string(c.Request().URI().PathOriginal()))
	switch {
	case errors.Is(err, domain.ErrBadPath):
		return web.NewError(http.StatusBadRequest, "Invalid path")
	case err != nil, route.Upstream == domain.UpstreamGateway:
		// The gateway's own routes are mounted ahead of the proxy, and the router matches raw paths: one
		// that reaches the proxy is spelled otherwise (percent-encoded), and no service answers it.
		return web.NewError(http.StatusNotFound, "Not found")
	}
	c.Locals(localRoute, route)
	return c.Next()
}

// tokenOptional lets the public routes, and every CORS preflight, through Authenticate without a token.
func tokenOptional(c *fiber.Ctx) bool {
	route, _ := c.Locals(localRoute).(domain.Route)
	return route.Public || c.Method() == fiber.MethodOptions
}

// Forward passes the request Route resolved on to its service.
func (p *Proxy) Forward(c *fiber.Ctx) error {
	route, _ := c.Locals(localRoute).(domain.Route)
	if who, ok := callerOf(c); ok && route.Upload && !who.claims.IsAdmin() {
		return web.NewError(http.StatusForbidden, "Admin access required")
	}
	base, ok := p.Bases[route.Upstream]
	if !ok {
		return web.NewError(http.StatusServiceUnavailable, "Service unavailable")
	}
	prepareHeaders(c)
	timeout := route.Timeout
	if timeout == 0 {
		timeout = p.DefaultTimeout
	}
	var err error
	if route.Upload {
		err = p.upload(c, base+originForm(c))
	} else {
		err = proxy.DoTimeout(c, base+originForm(c), timeout, p.client)
	}
	var werr *web.Error
	switch {
	case errors.As(err, &werr):
		return err
	case errors.Is(err, fasthttp.ErrTimeout):
		return web.NewError(http.StatusGatewayTimeout, "Upstream timeout")
	case err != nil:
		return &web.Error{Code: http.StatusBadGateway, Message: "Service unavailable", Detail: "upstream " + string(route.Upstream) + " did not answer"}
	}
	for _, h := range hopByHop {
		c.Response().Header.Del(h)
	}
	// The service's response replaced ours, with the request id the gateway had set on it.
	c.Response().Header.SetBytesV(web.HeaderRequestID, c.Request().Header.Peek(web.HeaderRequestID))
	return nil
}

// originForm is the request's target as the service is asked for it: path and query as the client
// wrote them. A request line in absolute form (`GET http://host/api/vms`, which RFC 9112 3.2.2 has
// servers accept) is reduced to its origin form (`/api/vms`); appended whole to the service's base
// URL it made no URL at all (502).
func originForm(c *fiber.Ctx) string {
	if uri := c.Request().Header.RequestURI(); len(uri) > 0 && uri[0] == '/' {
		return string(uri)
	}
	u := c.Request().URI()
	target := string(u.PathOriginal())
	if target == "" {
		target = "/"
	}
	if q := u.QueryString(); len(q) > 0 {
		target += "?" + string(q)
	}
	return target
}

// IsUpload tells web.NewApp (AppConfig.Upload) which requests are streamed uploads: those the
// domain routes as one.
func IsUpload(c *fiber.Ctx) bool {
	route, err := domain.Resolve(c.Method(), string(c.Request().URI().PathOriginal()))
	return err == nil && route.Upload
}

// untrustedPrefixes are identity and forwarding headers only the gateway may set.
var untrustedPrefixes = []string{"x-forwarded-", "x-real-ip", "forwarded", "x-user-", "x-limen-", "x-internal-"}

var hopByHop = []string{"Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Proxy-Connection", "Te", "Trailer", "Upgrade"}

// answeredHere are request headers the gateway has acted on itself: it already told the client to
// go on with its body.
var answeredHere = []string{"Expect"}

// prepareHeaders drops what a client must not decide and adds what the services may trust.
func prepareHeaders(c *fiber.Ctx) {
	// Who the client is, as the peer or a trusted proxy in front of the gateway says (never what an
	// untrusted client wrote); read before the forwarding headers are dropped.
	client := web.ClientOf(c)
	h := &c.Request().Header
	var drop []string
	h.VisitAll(func(key, _ []byte) {
		for _, prefix := range untrustedPrefixes {
			if len(key) >= len(prefix) && strings.EqualFold(string(key[:len(prefix)]), prefix) {
				drop = append(drop, string(key))
				return
			}
		}
	})
	for _, k := range drop {
		h.Del(k)
	}
	for _, k := range hopByHop {
		h.Del(k)
	}
	for _, k := range answeredHere {
		h.Del(k)
	}
	// The services believe these from the gateway only: each is replaced, never appended to.
	h.Set(fiber.HeaderXForwardedFor, client.IP)
	h.Set(fiber.HeaderXForwardedProto, client.Proto)
	h.Set(fiber.HeaderXForwardedHost, client.Host)
	// Continue the gateway's trace in the service.
	telemetry.InjectInto(c.UserContext(), h)
}
