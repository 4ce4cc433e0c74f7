package pgdown_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"limen/libs/testkit/pgtest"
	"limen/libs/web"
)

// do sends GET path to app and decodes the answer.
func do(t *testing.T, app *fiber.App, path string) (int, map[string]any, http.Header) {
	t.Helper()
	resp, err := app.Test(httptest.NewRequest(http.MethodGet, path, nil), 10_000)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body, resp.Header
}

// want503 checks the contract's body and Retry-After.
func want503(t *testing.T, what string, status int, body map[string]any, h http.Header) {
	t.Helper()
	if status != http.StatusServiceUnavailable || body["code"] != float64(503) || body["message"] != web.MessageUnavailable ||
		h.Get("Retry-After") != "1" || len(h.Values("Retry-After")) != 1 {
		t.Fatalf("%s: %d %v, Retry-After %q; want 503 %q with Retry-After: 1", what, status, body, h.Values("Retry-After"), web.MessageUnavailable)
	}
}

// dbApp answers GET /q by running query on pool, handing any error to the error handler as it is.
func dbApp(pool *pgxpool.Pool, query string) *fiber.App {
	app := web.NewApp(web.AppConfig{Service: "test", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	app.Get("/q", func(c *fiber.Ctx) error {
		ctx, cancel := context.WithTimeout(c.UserContext(), 3*time.Second)
		defer cancel()
		var n int
		if err := pool.QueryRow(ctx, query).Scan(&n); err != nil {
			return fmt.Errorf("the query: %w", err)
		}
		return c.JSON(fiber.Map{"n": n})
	})
	return app
}

// postmaster is the pid of the cluster's server (listening on port).
func postmaster(t *testing.T, port int) int {
	t.Helper()
	out, err := exec.Command("pgrep", "-o", "-f", "--", fmt.Sprintf("-p %d ", port)).Output()
	if err != nil {
		t.Fatalf("find the postmaster: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// While Postgres is down, a route that needs it answers 503 with the contract's body and
// Retry-After: 1, not 500: the sessions a fast shutdown ended (SQLSTATE 57P01), a pool whose server
// refuses connections, and an immediate shutdown (a connection broken mid-answer). Real
// errors of the database stay 500.
func TestErrorHandler_DatabaseDown_Is503WithRetryAfter(t *testing.T) {
	ctx := context.Background()
	for _, shutdown := range []struct {
		name   string
		signal syscall.Signal
	}{{"fast shutdown", syscall.SIGINT}, {"immediate shutdown", syscall.SIGQUIT}} {
		t.Run(shutdown.name, func(t *testing.T) {
			cluster, err := pgtest.StartCluster(ctx)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = cluster.Stop() })
			pool, err := pgxpool.New(ctx, cluster.DSN("postgres"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(pool.Close)
			app := dbApp(pool, "SELECT 1")
			if status, body, _ := do(t, app, "/q"); status != http.StatusOK {
				t.Fatalf("with Postgres up: %d %v", status, body)
			}
			if status, body, _ := do(t, dbApp(pool, "SELECT 1/0"), "/q"); status != http.StatusInternalServerError {
				t.Fatalf("a query the database refuses: %d %v; want 500", status, body)
			}

			pid := postmaster(t, cluster.Port())
			if err := syscall.Kill(pid, shutdown.signal); err != nil {
				t.Fatal(err)
			}
			for deadline := time.Now().Add(10 * time.Second); syscall.Kill(pid, 0) == nil; time.Sleep(20 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("Postgres did not stop")
				}
			}
			// The pooled connection first (ended by the server, or broken), then new connections refused.
			for i := range 3 {
				status, body, h := do(t, app, "/q")
				want503(t, fmt.Sprintf("request %d with Postgres down", i+1), status, body, h)
			}
		})
	}
}

// pgx's own errors for a database out of reach are Unavailable; its errors for a bad query are not.
func TestUnavailable_PgxErrors(t *testing.T) {
	for name, err := range map[string]error{
		"admin shutdown": &pgconn.PgError{Severity: "FATAL", Code: "57P01", Message: "terminating connection due to administrator command"},
		"starting up":    &pgconn.PgError{Severity: "FATAL", Code: "57P03", Message: "the database system is starting up"},
		"conn closed":    fmt.Errorf("begin: %w", pgconn.ErrConnClosed),
	} {
		if !web.Unavailable(err) {
			t.Errorf("%s: not unavailable", name)
		}
	}
	for name, err := range map[string]error{
		"unique violation": &pgconn.PgError{Code: "23505", ConstraintName: "vms_owner_name_key"},
		"syntax error":     &pgconn.PgError{Code: "42601"},
		"plain":            errors.New("boom"),
	} {
		if web.Unavailable(err) {
			t.Errorf("%s: unavailable", name)
		}
	}
}
