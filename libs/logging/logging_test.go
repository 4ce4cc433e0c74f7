package logging_test

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"go.opentelemetry.io/otel/trace"

	"limen/libs/logging"
)

func TestLogger_AddsRequestAndTraceIDs(t *testing.T) {
	var buf bytes.Buffer
	log := logging.NewTo(&buf, "auth", "info")
	traceID, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	spanID, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{TraceID: traceID, SpanID: spanID}))
	ctx = logging.WithRequestID(ctx, "req-1")

	log.InfoContext(ctx, "hello")

	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{"service": "auth", "request_id": "req-1", "trace_id": traceID.String(), "msg": "hello"} {
		if line[key] != want {
			t.Errorf("%s = %v, want %s", key, line[key], want)
		}
	}
}

func TestLogger_HonoursLevel(t *testing.T) {
	var buf bytes.Buffer
	logging.NewTo(&buf, "auth", "warn").Info("quiet")
	if buf.Len() != 0 {
		t.Fatalf("info logged at warn level: %s", buf.String())
	}
}
