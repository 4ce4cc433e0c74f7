package web_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"

	"github.com/gofiber/fiber/v2"

	"limen/libs/web"
)

// want503 checks the contract's body and Retry-After.
func want503(t *testing.T, what string, status int, body map[string]any, h http.Header) {
	t.Helper()
	if status != http.StatusServiceUnavailable || body["code"] != float64(503) || body["message"] != web.MessageUnavailable ||
		h.Get("Retry-After") != "1" || len(h.Values("Retry-After")) != 1 {
		t.Fatalf("%s: %d %v, Retry-After %q; want 503 %q with Retry-After: 1", what, status, body, h.Values("Retry-After"), web.MessageUnavailable)
	}
}

// sqlStateError is a Postgres error as the driver's (*pgconn.PgError) is seen by libs/web: its
// SQLSTATE (the real ones: package pgdown).
type sqlStateError string

func (e sqlStateError) Error() string    { return "ERROR: something (SQLSTATE " + string(e) + ")" }
func (e sqlStateError) SQLState() string { return string(e) }

// Constructed errors: what pgx and the network return when a dependency is out of reach or slow is
// 503; bugs are 500. A handler's own 503 gets Retry-After too, unless it set one.
func TestErrorHandler_UnavailableErrorsAre503_BugsStay500(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: &net.AddrError{Err: "connect: connection refused"}}
	pg := func(code string) error { return sqlStateError(code) }
	unavailable := map[string]error{
		"deadline":            fmt.Errorf("list: %w", context.DeadlineExceeded),
		"dial refused":        fmt.Errorf("failed to connect: %w", refused),
		"reset":               fmt.Errorf("read: %w", syscall.ECONNRESET),
		"broken mid-answer":   io.ErrUnexpectedEOF,
		"admin shutdown":      fmt.Errorf("query: %w", pg("57P01")),
		"starting up":         errors.Join(errors.New("connect"), pg("57P03")),
		"connection failure":  pg("08006"),
		"statement timeout":   pg("57014"),
		"lock timeout":        pg("55P03"),
		"too many clients":    pg("53300"),
		"conn closed":         fmt.Errorf("begin: %w", errors.New("conn closed")),
		"rollback after fail": errors.Join(errors.New("update"), fmt.Errorf("rollback: %w", io.ErrUnexpectedEOF)),
	}
	bugs := map[string]error{
		"plain":             errors.New("nil map"),
		"unique violation":  pg("23505"),
		"syntax error":      pg("42601"),
		"division by zero":  pg("22012"),
		"canceled by a bug": errors.New("canceled"),
	}
	app := web.NewApp(web.AppConfig{Service: "test", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	all := map[string]error{}
	for name, err := range unavailable {
		all[name] = err
	}
	for name, err := range bugs {
		all[name] = err
	}
	for name, err := range all {
		app.Get("/"+strings.ReplaceAll(name, " ", "-"), func(*fiber.Ctx) error { return err })
	}
	app.Get("/own-503", func(*fiber.Ctx) error { return web.NewError(503, "Hypervisor unavailable, try again shortly") })
	app.Get("/own-retry-after", func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderRetryAfter, "7")
		return web.NewError(503, "Server busy, retry shortly")
	})
	for name := range unavailable {
		status, body, h := do(t, app, httptest.NewRequest(http.MethodGet, "/"+strings.ReplaceAll(name, " ", "-"), nil))
		want503(t, name, status, body, h)
	}
	for name := range bugs {
		status, body, h := do(t, app, httptest.NewRequest(http.MethodGet, "/"+strings.ReplaceAll(name, " ", "-"), nil))
		if status != 500 || body["message"] != "Internal server error" || h.Get("Retry-After") != "" {
			t.Errorf("%s: %d %v Retry-After %q; want 500", name, status, body, h.Get("Retry-After"))
		}
	}
	if status, body, h := do(t, app, httptest.NewRequest(http.MethodGet, "/own-503", nil)); status != 503 ||
		body["message"] != "Hypervisor unavailable, try again shortly" || h.Get("Retry-After") != "1" {
		t.Errorf("a handler's 503: %d %v Retry-After %q", status, body, h.Get("Retry-After"))
	}
	if status, _, h := do(t, app, httptest.NewRequest(http.MethodGet, "/own-retry-after", nil)); status != 503 ||
		h.Values("Retry-After")[0] != "7" || len(h.Values("Retry-After")) != 1 {
		t.Errorf("a handler's Retry-After: %d %q", status, h.Values("Retry-After"))
	}
}
