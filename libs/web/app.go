package web

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"time"

	gojson "github.com/goccy/go-json"
	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/recover"
	"golang.org/x/sync/errgroup"

	"limen/libs/telemetry"
)

// AppConfig describes the parts every service's Fiber app shares.
type AppConfig struct {
	Service   string
	Logger    *slog.Logger
	Telemetry *telemetry.Telemetry
	// BodyLimit caps request bodies (413 beyond it); 0 means 1 MiB. Uploads (below) are exempt.
	BodyLimit int
	// StreamRequestBody lets the requests Upload marks reach their handler with the body still on the
	// connection, to be read as a stream with UploadBody (fiber.Config.StreamRequestBody), so that a
	// body of many GiB never sits in memory. Every other request is still read whole before its
	// handler runs and held to BodyLimit: fasthttp stops enforcing the limit once streaming is on,
	// so NewApp does it (see upload.go).
	StreamRequestBody bool
	// Upload reports whether a request is a streamed upload (see UploadRoute). Consulted only with
	// StreamRequestBody, before routing; nil: no request is.
	Upload func(c *fiber.Ctx) bool
	// Checks are the dependencies /readyz reports.
	Checks map[string]Check
	// TrustedProxies are the addresses (IPs or CIDRs) whose X-Forwarded-For is believed, so that
	// c.IP() is the client's address behind the gateway. Empty: the peer address is the client.
	// ClientIP and ClientOf read the same list more carefully (see forwarded.go).
	TrustedProxies []string
	// SeparateInternal leaves /readyz and /metrics off this app (they answer 404 on it): NewInternalApp
	// serves them, for a listener of their own that is not exposed. /healthz stays on both.
	SeparateInternal bool
	// Edge are handlers every request passes, right after its access log, before anything may answer
	// it (the body limit, the health routes, the caller's routes): the gateway's CORS, which must
	// reach every answer. One that needs the final answer renders an error itself (RenderError).
	Edge []fiber.Handler
}

// NewApp builds a Fiber app with the contract's error handler, panic recovery, tracing, request ids,
// access logs, /healthz, /readyz and /metrics (only /healthz with SeparateInternal). Routes are added by
// the caller.
func NewApp(cfg AppConfig) *fiber.App {
	bodyLimit := cfg.BodyLimit
	if bodyLimit == 0 {
		bodyLimit = 1 << 20
	}
	app := fiber.New(fiber.Config{
		AppName: cfg.Service,
		// Fiber's recommended drop-in for encoding/json: a list of 1,000 VMs encodes in a fraction
		// of the time, and the list is the frontend's most frequent call.
		JSONEncoder:             gojson.Marshal,
		BodyLimit:               bodyLimit,
		ErrorHandler:            ErrorHandler(cfg.Logger),
		DisableStartupMessage:   true,
		ReadTimeout:             60 * time.Second,
		IdleTimeout:             120 * time.Second,
		EnableTrustedProxyCheck: true, // even with no proxy: c.Protocol(), c.Hostname() believe no one then
		TrustedProxies:          cfg.TrustedProxies,
		ProxyHeader:             proxyHeader(cfg.TrustedProxies),
		StreamRequestBody:       cfg.StreamRequestBody,
		// fasthttp pre-parses a multipart body of any size into memory and temporary files before
		// the handler runs when streaming, whatever the limit; c.MultipartForm() still parses it
		// from the (bounded) body on demand.
		DisablePreParseMultipartForm: cfg.StreamRequestBody,
	})
	// Requests fasthttp cannot read never reach ErrorHandler; this answers them (see parse_errors.go).
	app.Server().ErrorHandler = unreadableRequest(cfg.Logger)
	// A hijacked connection is its handler's to close (every one here closes it), so a handler may
	// hand the connection on and return: fasthttp then lets go of the request's context and buffers,
	// which a long-lived socket would otherwise hold for as long as it is open.
	app.Server().KeepHijackedConns = true
	app.Use(recover.New(), trustProxies(cfg.TrustedProxies))
	if cfg.Telemetry != nil {
		app.Use(cfg.Telemetry.Middleware())
		if !cfg.SeparateInternal {
			app.Get("/metrics", cfg.Telemetry.MetricsHandler())
		}
	}
	app.Use(RequestID(), AccessLog(cfg.Logger))
	for _, h := range cfg.Edge {
		app.Use(h)
	}
	if cfg.StreamRequestBody {
		app.Use(bodyGuard(bodyLimit, cfg.Upload))
	}
	mountHealth(app, cfg.Checks, !cfg.SeparateInternal)
	return app
}

// NewInternalApp serves what an app built with SeparateInternal leaves out: /readyz (cfg.Checks),
// /metrics (cfg.Telemetry, when set) and /healthz, with the contract's error body, for a listener
// only monitoring reaches. Requests to it are neither traced nor logged (Prometheus asks every few
// seconds).
func NewInternalApp(cfg AppConfig) *fiber.App {
	app := fiber.New(fiber.Config{
		AppName:                 cfg.Service + "-internal",
		ErrorHandler:            ErrorHandler(cfg.Logger),
		DisableStartupMessage:   true,
		ReadTimeout:             60 * time.Second,
		IdleTimeout:             120 * time.Second,
		EnableTrustedProxyCheck: true,
	})
	app.Server().ErrorHandler = unreadableRequest(cfg.Logger)
	app.Use(recover.New())
	if cfg.Telemetry != nil {
		app.Get("/metrics", cfg.Telemetry.MetricsHandler())
	}
	mountHealth(app, cfg.Checks, true)
	return app
}

// trustProxies hands each request the app's trusted proxies, for ClientIP and ClientOf.
func trustProxies(list []string) fiber.Handler {
	p := newProxies(list)
	return func(c *fiber.Ctx) error {
		c.Locals(localProxies, p)
		return c.Next()
	}
}

// Serve answers on ln until ctx is done, then stops accepting and drains in-flight requests for up to
// drain before returning. Taking a listener lets callers choose TLS and lets tests bind port 0.
func Serve(ctx context.Context, app *fiber.App, ln net.Listener, drain time.Duration, log *slog.Logger) error {
	errc := make(chan error, 1)
	go func() { errc <- app.Listener(ln) }()
	log.Info("listening", "addr", ln.Addr().String())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down", "drain", drain.String())
	if err := app.ShutdownWithTimeout(drain); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return <-errc
}

// Listening is an app and the listener it answers on, for ServeAll.
type Listening struct {
	App      *fiber.App
	Listener net.Listener
}

// ServeAll is Serve for several apps (a public one and its internal one, say): all answer until ctx
// is done or one of them fails, then every one stops accepting and drains for up to drain. The first
// failure is returned.
func ServeAll(ctx context.Context, drain time.Duration, log *slog.Logger, apps ...Listening) error {
	g, ctx := errgroup.WithContext(ctx)
	for _, a := range apps {
		g.Go(func() error { return Serve(ctx, a.App, a.Listener, drain, log) })
	}
	return g.Wait()
}

func proxyHeader(trusted []string) string {
	if len(trusted) == 0 {
		return ""
	}
	return fiber.HeaderXForwardedFor
}
