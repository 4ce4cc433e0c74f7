package internalapi_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"limen/libs/internalapi"
)

// A call presents the internal token, sends JSON, carries the trace, and hands back any status with
// its body.
func TestClient_Post(t *testing.T) {
	otel.SetTextMapPropagator(propagation.TraceContext{})
	var got *http.Request
	var gotBody string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r
		b, _ := io.ReadAll(r.Body)
		gotBody = string(b)
		w.WriteHeader(http.StatusForbidden)
		_, _ = w.Write([]byte(`{"code":403,"message":"Quota exceeded: vms 4/3"}`))
	}))
	defer srv.Close()
	c := internalapi.New(internalapi.Config{Base: srv.URL, Token: "peer-secret", Timeout: time.Second})
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, TraceFlags: trace.FlagsSampled})
	ctx := trace.ContextWithSpanContext(context.Background(), sc)
	answer, err := c.Post(ctx, "/internal/x", map[string]int{"vms": 1})
	if err != nil {
		t.Fatal(err)
	}
	if answer.Status != http.StatusForbidden || answer.Message() != "Quota exceeded: vms 4/3" {
		t.Errorf("answer %d %q", answer.Status, answer.Message())
	}
	if got.Method != http.MethodPost || got.URL.Path != "/internal/x" || got.Header.Get("Authorization") != "Bearer peer-secret" ||
		got.Header.Get("Content-Type") != "application/json" || gotBody != `{"vms":1}` ||
		!strings.Contains(got.Header.Get("Traceparent"), sc.TraceID().String()) {
		t.Errorf("request %s %s %v body %q", got.Method, got.URL, got.Header, gotBody)
	}
}

// No answer at all, and an answer over the bound, are errors; a body that is not an error body has
// no message.
func TestClient_NoAnswer(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(strings.Repeat("x", 100)))
	}))
	c := internalapi.New(internalapi.Config{Base: srv.URL, Timeout: time.Second, MaxAnswer: 99})
	if _, err := c.Get(context.Background(), "/"); err == nil || !strings.Contains(err.Error(), "over 99 bytes") {
		t.Errorf("answer over the bound: %v", err)
	}
	answer, err := internalapi.New(internalapi.Config{Base: srv.URL, Timeout: time.Second}).Get(context.Background(), "/")
	if err != nil || answer.Status != http.StatusOK || answer.Message() != "" || answer.Decode(new(any)) == nil {
		t.Errorf("plain answer: %+v %v", answer, err)
	}
	srv.Close()
	if _, err := c.Get(context.Background(), "/"); err == nil {
		t.Error("a closed server answered")
	}
}
