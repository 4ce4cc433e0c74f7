package logging_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"unsafe"

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

// The id may alias a server's reused buffer: the context keeps its own copy, of any length, and
// hands it and its parent's values on through derived contexts.
func TestWithRequestID_KeepsACopyAndTheParentsValues(t *testing.T) {
	type key struct{}
	parent := context.WithValue(context.Background(), key{}, "parent's")
	for _, id := range []string{"550e8400-e29b-41d4-a716-446655440000", strings.Repeat("x", 128), ""} {
		buf := []byte(id)
		ctx := logging.WithRequestID(parent, unsafe.String(unsafe.SliceData(buf), len(buf)))
		for i := range buf {
			buf[i] = '!'
		}
		child, cancel := context.WithCancel(ctx)
		if got := logging.RequestID(child); got != id {
			t.Errorf("RequestID = %q, want %q", got, id)
		}
		if child.Value(key{}) != "parent's" {
			t.Errorf("the parent's value is lost")
		}
		cancel()
	}
	if logging.RequestID(parent) != "" {
		t.Error("a context without an id has one")
	}
}

// A request id costs each request served one allocation, the context and the id together.
func TestWithRequestID_AllocatesOnce(t *testing.T) {
	ctx, id := context.Background(), "550e8400-e29b-41d4-a716-446655440000"
	if n := testing.AllocsPerRun(100, func() { ctx = logging.WithRequestID(context.Background(), id) }); n != 1 {
		t.Errorf("%v allocations, want 1", n)
	}
	if n := testing.AllocsPerRun(100, func() { id = logging.RequestID(ctx) }); n != 0 {
		t.Errorf("RequestID: %v allocations, want 0", n)
	}
}
