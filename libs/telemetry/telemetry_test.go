package telemetry_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/trace"

	"limen/libs/telemetry"
)

// newApp is an app served through the middleware of telemetry set up from the environment.
func newApp(t *testing.T) (*fiber.App, *telemetry.Telemetry) {
	t.Helper()
	tel, err := telemetry.Setup(context.Background(), "test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	app := fiber.New()
	app.Use(tel.Middleware())
	return app, tel
}

// Without an exporter no span is started, yet the caller's trace reaches the handler's context (for
// logs and outgoing calls), and every request is counted by method, route and status.
func TestMiddleware_WithoutExporter_PassesTheTraceOnAndCountsRequests(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	app, tel := newApp(t)
	var seen trace.SpanContext
	var seenBaggage baggage.Baggage
	app.Get("/things/:id", func(c *fiber.Ctx) error {
		seen, seenBaggage = trace.SpanContextFromContext(c.UserContext()), baggage.FromContext(c.UserContext())
		return c.SendStatus(fiber.StatusTeapot)
	})
	app.Get("/metrics", tel.MetricsHandler())

	req := httptest.NewRequest(fiber.MethodGet, "/things/7", nil)
	req.Header.Set("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	if _, err := app.Test(req); err != nil {
		t.Fatal(err)
	}
	if seen.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || seen.SpanID().String() != "00f067aa0ba902b7" || !seen.IsRemote() {
		t.Errorf("handler's span context = %+v, want the caller's", seen)
	}
	// Baggage alone is passed on too.
	req = httptest.NewRequest(fiber.MethodGet, "/things/8", nil)
	req.Header.Set("baggage", "tenant=7")
	if _, err := app.Test(req); err != nil {
		t.Fatal(err)
	}
	if seen.IsValid() || seenBaggage.Member("tenant").Value() != "7" {
		t.Errorf("handler's span context %+v, baggage %q; want none, and tenant=7", seen, seenBaggage.String())
	}
	resp, err := app.Test(httptest.NewRequest(fiber.MethodGet, "/metrics", nil))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	want := `http_server_request_duration_seconds_count{method="GET",route="/things/:id",status="418"} 2`
	if !strings.Contains(string(body), want) {
		t.Errorf("metrics lack %s:\n%s", want, body)
	}
}

// With an exporter the request is served in a span of its own, a child of the caller's.
func TestMiddleware_WithExporter_ServesInAChildSpan(t *testing.T) {
	collector := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	t.Cleanup(collector.Close)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.URL)
	app, _ := newApp(t)
	var seen trace.SpanContext
	app.Get("/", func(c *fiber.Ctx) error {
		seen = trace.SpanContextFromContext(c.UserContext())
		return nil
	})
	req := httptest.NewRequest(fiber.MethodGet, "/", nil)
	req.Header.Set("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	if _, err := app.Test(req); err != nil {
		t.Fatal(err)
	}
	if seen.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || seen.SpanID().String() == "00f067aa0ba902b7" || seen.IsRemote() {
		t.Errorf("handler's span context = %+v, want a span of the caller's trace", seen)
	}
}
