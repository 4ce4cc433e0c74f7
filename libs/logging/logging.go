// Package logging builds the JSON slog logger every LIMEN process uses, with request and trace ids
// taken from the context so that one request can be followed across services.
package logging

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strings"
	"unsafe"

	"go.opentelemetry.io/otel/trace"
)

type requestIDKey struct{}

// WithRequestID returns a context carrying a copy of id, the request id of the call being served: id
// may alias a buffer the server reuses once the request is answered, while the context may outlive it.
func WithRequestID(ctx context.Context, id string) context.Context {
	c := &requestIDContext{Context: ctx}
	if len(id) <= len(c.stored) {
		n := copy(c.stored[:], id)
		c.id = unsafe.String(&c.stored[0], n)
	} else {
		c.id = strings.Clone(id)
	}
	return c
}

// RequestID is the request id carried by ctx, or "".
func RequestID(ctx context.Context) string {
	if c, ok := ctx.Value(requestIDKey{}).(*requestIDContext); ok {
		return c.id
	}
	return ""
}

// requestIDContext is a context with a request id, made for every request served: one allocation
// for the context and the id (a UUID, or any id as long, is kept in stored), where context.WithValue
// and a copy of the id took three.
type requestIDContext struct {
	context.Context
	id     string
	stored [36]byte
}

// Value answers the request id key with the context itself: a pointer, which an interface holds
// without allocating, where the id as a string would not be.
func (c *requestIDContext) Value(key any) any {
	if key == (requestIDKey{}) {
		return c
	}
	return c.Context.Value(key)
}

// New returns a JSON logger to stdout at level ("debug", "info", "warn", "error"), tagged with the service.
func New(service, level string) *slog.Logger {
	return NewTo(os.Stdout, service, level)
}

// NewTo is New writing to w.
func NewTo(w io.Writer, service, level string) *slog.Logger {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		lvl = slog.LevelInfo
	}
	base := slog.NewJSONHandler(w, &slog.HandlerOptions{Level: lvl})
	return slog.New(contextHandler{base}).With("service", service)
}

// contextHandler adds the ids found in the record's context.
type contextHandler struct{ slog.Handler }

func (h contextHandler) Handle(ctx context.Context, r slog.Record) error {
	if id := RequestID(ctx); id != "" {
		r.AddAttrs(slog.String("request_id", id))
	}
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return h.Handler.Handle(ctx, r)
}

func (h contextHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return contextHandler{h.Handler.WithAttrs(attrs)}
}

func (h contextHandler) WithGroup(name string) slog.Handler {
	return contextHandler{h.Handler.WithGroup(name)}
}
