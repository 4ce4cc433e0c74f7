// Package telemetry sets up OpenTelemetry for a LIMEN process: traces exported over OTLP/HTTP when
// OTEL_EXPORTER_OTLP_ENDPOINT is set (otherwise an inbound trace context is only passed on),
// metrics served in Prometheus format at /metrics, and W3C trace-context propagation.
package telemetry

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/gofiber/fiber/v2/utils"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Telemetry owns the process's tracer and meter providers.
type Telemetry struct {
	tracer trace.TracerProvider
	// sdkTracer is set when spans are exported and must be flushed at shutdown.
	sdkTracer       *sdktrace.TracerProvider
	meter           *sdkmetric.MeterProvider
	registry        *prometheus.Registry
	requestDuration *prometheus.HistogramVec
	// propagator is the one Setup installs, and propagated the request headers it reads.
	propagator propagation.TextMapPropagator
	propagated []string
}

// Setup installs the global providers and propagator for service.
func Setup(ctx context.Context, service string) (*Telemetry, error) {
	res := resource.NewSchemaless(semconv.ServiceName(service))

	t := &Telemetry{tracer: noop.NewTracerProvider()}
	if os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "" {
		exporter, err := otlptracehttp.New(ctx)
		if err != nil {
			return nil, err
		}
		t.sdkTracer = sdktrace.NewTracerProvider(sdktrace.WithResource(res), sdktrace.WithBatcher(exporter))
		t.tracer = t.sdkTracer
	}
	// Without an exporter the no-op provider still carries an inbound trace context through to logs
	// and outgoing calls, at no cost per request.

	registry := prometheus.NewRegistry()
	registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	exporter, err := otelprom.New(otelprom.WithRegisterer(registry))
	if err != nil {
		return nil, errors.Join(err, t.shutdownTracer(ctx))
	}
	t.meter = sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter), sdkmetric.WithResource(res))
	t.registry = registry

	otel.SetTracerProvider(t.tracer)
	otel.SetMeterProvider(t.meter)
	t.propagator = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	t.propagated = t.propagator.Fields()
	otel.SetTextMapPropagator(t.propagator)
	requestDuration := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "http_server_request_duration_seconds", Help: "Duration of HTTP requests served, by method, route and status.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"method", "route", "status"})
	registry.MustRegister(requestDuration)
	t.requestDuration = requestDuration
	return t, nil
}

// Middleware continues the caller's trace in a server span and records each request's duration.
// It stands in for otelfiber, whose per-request attribute sets and OTel histograms cost the gateway a
// third of its throughput; spans get their attributes only when they are recorded. It expects the
// error handler to have run inside it (web.NewApp's AccessLog does), so the status is final.
func (t *Telemetry) Middleware() fiber.Handler {
	tracer := t.tracer.Tracer("limen/libs/telemetry")
	return func(c *fiber.Ctx) error {
		ctx := c.UserContext()
		// Most requests carry no trace: one pass over their headers tells, where the propagators
		// would look each of theirs up in turn.
		if carriesAny(&c.Request().Header, t.propagated) {
			ctx = t.propagator.Extract(ctx, requestHeaderCarrier{&c.Request().Header})
		}
		// Without an exporter no span is ever recorded, and the no-op tracer's would only put back in
		// the context the inbound span context it already holds: not started, it costs nothing.
		span := trace.SpanFromContext(ctx)
		if t.sdkTracer != nil {
			ctx, span = tracer.Start(ctx, "HTTP", serverSpan...)
		}
		c.SetUserContext(ctx)
		err := c.Next()

		method, route, status := methodLabel(c.Method()), c.Route().Path, c.Response().StatusCode()
		// From when the server handed the request over: fasthttp has read the clock then already.
		t.requestDuration.WithLabelValues(method, route, statusLabel(status)).Observe(time.Since(c.Context().Time()).Seconds())
		if span.IsRecording() {
			span.SetName(method + " " + route)
			span.SetAttributes(semconv.HTTPRequestMethodKey.String(method), semconv.HTTPRoute(route), semconv.HTTPResponseStatusCode(status))
			if status >= 500 {
				span.SetStatus(codes.Error, "")
			}
		}
		span.End()
		return err
	}
}

// serverSpan are the options of a request's span, made once: made per call they cost an allocation.
var serverSpan = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer)}

// statusLabels are the status label values of the codes HTTP defines, made once: strconv.Itoa
// costs an allocation per request.
var statusLabels = func() (labels [600]string) {
	for code := 100; code < len(labels); code++ {
		labels[code] = strconv.Itoa(code)
	}
	return labels
}()

func statusLabel(code int) string {
	if code >= 100 && code < len(statusLabels) {
		return statusLabels[code]
	}
	return strconv.Itoa(code)
}

// methodLabel keeps label values bounded and owned: Fiber's method string aliases a reused buffer.
func methodLabel(m string) string {
	for _, known := range []string{fiber.MethodGet, fiber.MethodPost, fiber.MethodPut, fiber.MethodDelete,
		fiber.MethodPatch, fiber.MethodHead, fiber.MethodOptions} {
		if m == known {
			return known
		}
	}
	return "OTHER"
}

// carriesAny reports whether h has a header by one of names (in any letter case).
func carriesAny(h *fasthttp.RequestHeader, names []string) bool {
	for key := range h.All() {
		for _, name := range names {
			if len(key) == len(name) && strings.EqualFold(utils.UnsafeString(key), name) {
				return true
			}
		}
	}
	return false
}

// requestHeaderCarrier lets the propagator read and write fasthttp request headers.
type requestHeaderCarrier struct{ h *fasthttp.RequestHeader }

func (rc requestHeaderCarrier) Get(key string) string { return string(rc.h.Peek(key)) }
func (rc requestHeaderCarrier) Set(key, value string) { rc.h.Set(key, value) }
func (rc requestHeaderCarrier) Keys() []string {
	var keys []string
	rc.h.VisitAll(func(k, _ []byte) { keys = append(keys, string(k)) })
	return keys
}

// InjectInto writes ctx's trace context into outgoing request headers.
func InjectInto(ctx context.Context, h *fasthttp.RequestHeader) {
	otel.GetTextMapPropagator().Inject(ctx, requestHeaderCarrier{h})
}

// MetricsHandler serves the Prometheus exposition of this process's metrics.
func (t *Telemetry) MetricsHandler() fiber.Handler {
	return adaptor.HTTPHandler(promhttp.HandlerFor(t.registry, promhttp.HandlerOpts{}))
}

// Shutdown flushes pending spans and stops the providers.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	return errors.Join(t.shutdownTracer(ctx), t.meter.Shutdown(ctx))
}

func (t *Telemetry) shutdownTracer(ctx context.Context) error {
	if t.sdkTracer == nil {
		return nil
	}
	return t.sdkTracer.Shutdown(ctx)
}
