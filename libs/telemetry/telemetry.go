// Package telemetry sets up OpenTelemetry for a LIMEN process: traces exported over OTLP/HTTP when
// OTEL_EXPORTER_OTLP_ENDPOINT is set (otherwise ids are still made for logs, but nothing is recorded),
// metrics served in Prometheus format at /metrics, and W3C trace-context propagation.
package telemetry

import (
	"context"
	"errors"
	"os"

	"github.com/gofiber/contrib/otelfiber/v2"
	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// Telemetry owns the process's tracer and meter providers.
type Telemetry struct {
	tracer   *sdktrace.TracerProvider
	meter    *sdkmetric.MeterProvider
	registry *prometheus.Registry
}

// Setup installs the global providers and propagator for service.
func Setup(ctx context.Context, service string) (*Telemetry, error) {
	res := resource.NewSchemaless(semconv.ServiceName(service))

	traceOpts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	if os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "" {
		exporter, err := otlptracehttp.New(ctx)
		if err != nil {
			return nil, err
		}
		traceOpts = append(traceOpts, sdktrace.WithBatcher(exporter))
	} else {
		// Nowhere to send spans: keep the ids (logs use them) but record nothing.
		traceOpts = append(traceOpts, sdktrace.WithSampler(sdktrace.NeverSample()))
	}
	tracer := sdktrace.NewTracerProvider(traceOpts...)

	registry := prometheus.NewRegistry()
	registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	exporter, err := otelprom.New(otelprom.WithRegisterer(registry))
	if err != nil {
		return nil, errors.Join(err, tracer.Shutdown(ctx))
	}
	meter := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter), sdkmetric.WithResource(res))

	otel.SetTracerProvider(tracer)
	otel.SetMeterProvider(meter)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	return &Telemetry{tracer: tracer, meter: meter, registry: registry}, nil
}

// Middleware traces each request and records the HTTP server metrics.
func (t *Telemetry) Middleware() fiber.Handler {
	return otelfiber.Middleware(
		otelfiber.WithTracerProvider(t.tracer),
		otelfiber.WithMeterProvider(t.meter),
		otelfiber.WithNext(func(c *fiber.Ctx) bool { return c.Path() == "/metrics" }),
	)
}

// MetricsHandler serves the Prometheus exposition of this process's metrics.
func (t *Telemetry) MetricsHandler() fiber.Handler {
	return adaptor.HTTPHandler(promhttp.HandlerFor(t.registry, promhttp.HandlerOpts{}))
}

// Shutdown flushes pending spans and stops the providers.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	return errors.Join(t.tracer.Shutdown(ctx), t.meter.Shutdown(ctx))
}
