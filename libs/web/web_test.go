package web_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"limen/libs/failure"
	"limen/libs/web"
)

type createThing struct {
	Name  string `json:"name" validate:"required,min=3,max=8"`
	Count int    `json:"count" validate:"min=1"`
}

func newApp(checks map[string]web.Check) *fiber.App {
	app := web.NewApp(web.AppConfig{Service: "test", Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), BodyLimit: 64, Checks: checks})
	app.Post("/things", func(c *fiber.Ctx) error {
		var in createThing
		if err := web.DecodeJSON(c, &in); err != nil {
			return err
		}
		return c.Status(201).JSON(in)
	})
	app.Get("/boom", func(c *fiber.Ctx) error { return errors.New("database password is hunter2") })
	app.Get("/gone", func(c *fiber.Ctx) error { return web.NewError(404, "VM not found") })
	return app
}

// do sends req to app over a real socket: fasthttp's in-memory test path cannot show a 413.
func do(t *testing.T, app *fiber.App, req *http.Request) (int, map[string]any, http.Header) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = app.Listener(ln) }()
	t.Cleanup(func() { _ = app.Shutdown() })
	req.URL.Scheme, req.URL.Host, req.RequestURI = "http", ln.Addr().String(), ""
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body, resp.Header
}

func post(body, contentType string) *http.Request {
	req := httptest.NewRequest(http.MethodPost, "/things", strings.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return req
}

func TestDecodeJSON_BadInput_AnswersContractBody(t *testing.T) {
	cases := []struct {
		name, body, contentType string
		status                  int
		message                 string
	}{
		{"ok with unknown field", `{"name":"abcd","count":2,"extra":true}`, "application/json", 201, ""},
		{"empty body", ``, "application/json", 400, "Request body is required"},
		{"malformed", `{"name":`, "application/json", 400, "Invalid JSON body"},
		{"two documents", `{"name":"abcd","count":1}{}`, "application/json", 400, "Invalid JSON body"},
		{"wrong type", `{"name":5,"count":1}`, "application/json", 400, "Invalid value for field 'name': expected string"},
		{"missing", `{"count":1}`, "application/json", 400, "Field 'name' is required"},
		{"too short", `{"name":"ab","count":1}`, "application/json", 400, "Field 'name' must be at least 3 characters"},
		{"too small", `{"name":"abcd","count":0}`, "application/json", 400, "Field 'count' must be at least 1"},
		{"wrong content type", `name=abcd`, "application/x-www-form-urlencoded", 415, "Content-Type must be application/json"},
		{"too large", `{"name":"` + strings.Repeat("a", 100) + `"}`, "application/json", 413, "Request body too large"},
	}
	app := newApp(nil)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, body, _ := do(t, app, post(tc.body, tc.contentType))
			if status != tc.status {
				t.Fatalf("status %d, want %d (%v)", status, tc.status, body)
			}
			if tc.message != "" && (body["message"] != tc.message || body["code"] != float64(tc.status)) {
				t.Fatalf("body %v, want code %d message %q", body, tc.status, tc.message)
			}
		})
	}
}

func TestErrorHandler_HidesInternalErrors(t *testing.T) {
	status, body, _ := do(t, newApp(nil), httptest.NewRequest(http.MethodGet, "/boom", nil))
	if status != 500 || body["message"] != "Internal server error" || strings.Contains(toJSON(body), "hunter2") {
		t.Fatalf("got %d %v", status, body)
	}
}

func TestErrorHandler_RendersTypedErrorsAndUnknownRoutes(t *testing.T) {
	app := newApp(nil)
	if status, body, _ := do(t, app, httptest.NewRequest(http.MethodGet, "/gone", nil)); status != 404 || body["message"] != "VM not found" {
		t.Fatalf("got %d %v", status, body)
	}
	if status, body, _ := do(t, app, httptest.NewRequest(http.MethodGet, "/nowhere", nil)); status != 404 || body["code"] != float64(404) {
		t.Fatalf("got %d %v", status, body)
	}
}

func TestRequestID_KeptWhenWellFormedAndMadeOtherwise(t *testing.T) {
	app := newApp(nil)
	req := httptest.NewRequest(http.MethodGet, "/healthz", nil)
	req.Header.Set(web.HeaderRequestID, "abc-123")
	if _, _, h := do(t, app, req); h.Get(web.HeaderRequestID) != "abc-123" {
		t.Fatalf("request id not kept: %q", h.Get(web.HeaderRequestID))
	}
	req = httptest.NewRequest(http.MethodGet, "/healthz", nil)
	req.Header.Set(web.HeaderRequestID, "bad id <script>")
	if _, _, h := do(t, app, req); h.Get(web.HeaderRequestID) == "" || strings.Contains(h.Get(web.HeaderRequestID), " ") {
		t.Fatalf("bad request id not replaced: %q", h.Get(web.HeaderRequestID))
	}
}

func TestReadyz_ReportsEachDependency(t *testing.T) {
	healthy := newApp(map[string]web.Check{"db": func(context.Context) error { return nil }})
	status, body, _ := do(t, healthy, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	if status != 200 || body["status"] != "ok" || body["checks"].(map[string]any)["db"] != "connected" {
		t.Fatalf("got %d %v", status, body)
	}
	broken := newApp(map[string]web.Check{
		"db":      func(context.Context) error { return nil },
		"libvirt": func(context.Context) error { return errors.New("down") },
	})
	status, body, _ = do(t, broken, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	if status != 503 || body["status"] != "degraded" || body["checks"].(map[string]any)["libvirt"] != "disconnected" {
		t.Fatalf("got %d %v", status, body)
	}
}

func toJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestFailuresAnswerTheirKindsStatus(t *testing.T) {
	app := fiber.New(fiber.Config{ErrorHandler: web.ErrorHandler(slog.New(slog.DiscardHandler))})
	failures := map[string]error{
		"/invalid":   failure.InvalidField("name", "Name is required"),
		"/busy":      fmt.Errorf("wrapped: %w", failure.New(failure.Busy, "VM is busy: stop in progress")),
		"/quota":     failure.New(failure.Quota, "Quota exceeded: vms 11/10"),
		"/throttled": failure.Retry(failure.TooManyRequests, "Too many failed login attempts, try again later", 1500*time.Millisecond),
		"/unmapped":  failure.New(failure.Kind(999), "secret internals"),
	}
	for path, err := range failures {
		app.Get(path, func(*fiber.Ctx) error { return err })
	}
	for path, want := range map[string]struct {
		status     int
		message    string
		retryAfter string
	}{
		"/invalid":   {400, "Name is required", ""},
		"/busy":      {409, "VM is busy: stop in progress", ""},
		"/quota":     {403, "Quota exceeded: vms 11/10", ""},
		"/throttled": {429, "Too many failed login attempts, try again later", "2"},
		"/unmapped":  {500, "Internal server error", ""},
	} {
		resp, err := app.Test(httptest.NewRequest(http.MethodGet, path, nil))
		if err != nil {
			t.Fatal(err)
		}
		var body web.Error
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != want.status || body.Code != want.status || body.Message != want.message {
			t.Errorf("%s: %d %+v, want %d %q", path, resp.StatusCode, body, want.status, want.message)
		}
		if got := resp.Header.Get(fiber.HeaderRetryAfter); got != want.retryAfter {
			t.Errorf("%s: Retry-After %q, want %q", path, got, want.retryAfter)
		}
	}
}
