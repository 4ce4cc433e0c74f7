package apidoc

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/gofiber/fiber/v2"

	"limen/docs"
	"limen/libs/web"
)

// recorder is a testing.TB that notes failures instead of failing, so a test can see what the
// package under test reports. Only Helper and Errorf may be called on it.
type recorder struct {
	testing.TB
	failures []string
}

func (r *recorder) Helper() {}

func (r *recorder) Errorf(format string, args ...any) {
	r.failures = append(r.failures, fmt.Sprintf(format, args...))
}

func (r *recorder) expectPass(t *testing.T) {
	t.Helper()
	if len(r.failures) > 0 {
		t.Fatalf("want no failure, got:\n%s", strings.Join(r.failures, "\n"))
	}
}

// expectFailure wants exactly one failure, mentioning every one of words.
func (r *recorder) expectFailure(t *testing.T, words ...string) {
	t.Helper()
	if len(r.failures) != 1 {
		t.Fatalf("want one failure mentioning %q, got %d:\n%s", words, len(r.failures), strings.Join(r.failures, "\n"))
	}
	for _, w := range words {
		if !strings.Contains(r.failures[0], w) {
			t.Fatalf("failure %q does not mention %q", r.failures[0], w)
		}
	}
}

func fixture(t *testing.T) *document {
	t.Helper()
	data, err := os.ReadFile("testdata/fixture.yaml")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := parse(data)
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

func newApp() *fiber.App {
	return web.NewApp(web.AppConfig{Service: "fixture", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
}

func answer(body string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
		return c.SendString(body)
	}
}

// thingsApp serves what the fixture gives the service "things", behind middleware of the kinds
// services use, and a catch-all.
func thingsApp() *fiber.App {
	app := newApp()
	app.Use(func(c *fiber.Ctx) error { return c.Next() })
	things := app.Group("/things", func(c *fiber.Ctx) error { return c.Next() })
	things.Get("/", answer(`[]`))
	things.Post("/", answer(`{"id":1,"name":"one"}`))
	things.Get("/:id", answer(`{"id":1,"name":"one"}`))
	app.All("/proxy/*", answer(`{}`))
	return app
}

func TestOpenAPIDocumentValidates(t *testing.T) {
	spec, err := openapi3.NewLoader().LoadFromData(docs.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	if err := spec.Validate(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// Every operation names a LIMEN process, and every error it documents has the error body.
func TestOpenAPIDocumentNamesServicesAndErrorBodies(t *testing.T) {
	doc, err := loadOpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	ops, err := doc.operations()
	if err != nil {
		t.Fatal(err)
	}
	known := []string{"auth-service", "vm-service", "media-service", "quota-service", "gateway"}
	for r, op := range ops {
		for _, s := range op.services {
			if !slices.Contains(known, s) {
				t.Errorf("%s: x-service %q is none of %q", r, s, known)
			}
		}
	}
	// The health reports answer 503 with their own body.
	reports := []string{"#/components/schemas/Health", "#/components/schemas/Readiness"}
	for path, item := range doc.spec.Paths.Map() {
		for method, op := range item.Operations() {
			for status, resp := range op.Responses.Map() {
				if status < "400" {
					continue
				}
				media := resp.Value.Content.Get(fiber.MIMEApplicationJSON)
				if media == nil || len(resp.Value.Content) != 1 {
					t.Errorf("%s %s %s: the error body must be the only content", method, path, status)
					continue
				}
				if ref := media.Schema.Ref; ref != "#/components/schemas/Error" && !(status == "503" && slices.Contains(reports, ref)) {
					t.Errorf("%s %s %s: body %q, want the error body", method, path, status, ref)
				}
			}
		}
	}
}

func TestCheckRoutes_AppServingItsOperationsPasses(t *testing.T) {
	rec := &recorder{}
	fixture(t).checkRoutes(rec, "things", thingsApp())
	rec.expectPass(t)
}

func TestCheckRoutes_UndocumentedRouteFails(t *testing.T) {
	app := thingsApp()
	app.Delete("/things/:id", answer(`{}`))
	rec := &recorder{}
	fixture(t).checkRoutes(rec, "things", app)
	rec.expectFailure(t, "DELETE /things/{id}", "not in the API document")
}

func TestCheckRoutes_DocumentedRouteNotServedFails(t *testing.T) {
	app := newApp()
	app.Get("/things", answer(`[]`))
	app.Get("/things/:id", answer(`{"id":1,"name":"one"}`))
	rec := &recorder{}
	fixture(t).checkRoutes(rec, "things", app)
	rec.expectFailure(t, "POST /things", "does not serve it")
}

func TestCheckRoutes_RouteOfAnotherServiceFails(t *testing.T) {
	app := thingsApp()
	app.Get("/others", answer(`{}`))
	rec := &recorder{}
	fixture(t).checkRoutes(rec, "things", app)
	rec.expectFailure(t, "GET /others", "gives it to others")
}

// A shared route (/healthz here) may be missing, as it is from apps built without it.
func TestCheckRoutes_SharedRouteMayBeMissing(t *testing.T) {
	app := fiber.New()
	app.Get("/others", answer(`{}`))
	rec := &recorder{}
	fixture(t).checkRoutes(rec, "others", app)
	rec.expectPass(t)
}

// The gateway's apps as its main builds them, against the real document: the public one (its own
// routes, /healthz and the catch-all that forwards to the services), alone or with the internal one.
func TestCheckRoutes_GatewayAgainstTheDocument(t *testing.T) {
	cfg := web.AppConfig{Service: "gateway", Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), SeparateInternal: true}
	public := web.NewApp(cfg)
	for _, path := range []string{"/api/health", "/ws/vm-status", "/api/openapi.json", "/api/docs", "/api/docs/:file", "/vnc/:ref", "/console/:ref"} {
		public.Get(path, answer(`{}`))
	}
	public.All("/api/*", answer(`{}`))
	for _, apps := range [][]*fiber.App{{public}, {public, web.NewInternalApp(cfg)}} {
		rec := &recorder{}
		CheckRoutes(rec, "gateway", apps...)
		rec.expectPass(t)
	}
}

func TestValidateResponse_DocumentedAnswerPasses(t *testing.T) {
	doc := fixture(t)
	json := http.Header{"Content-Type": {"application/json"}}
	for _, c := range []struct {
		method, target string
		status         int
		header         http.Header
		body           string
	}{
		{"GET", "/things/7", 200, json, `{"id":7,"name":"seven"}`},
		{"GET", "http://elsewhere.test/things/", 200, json, `[{"id":7,"name":"seven"}]`},
		{"GET", "/things/7", 503, http.Header{"Content-Type": {"application/json"}, "Retry-After": {"1"}}, `{"code":503,"message":"later"}`},
		{"GET", "/others", 204, http.Header{}, ``},
		{"HEAD", "/things/7", 200, json, ``},
	} {
		rec := &recorder{}
		doc.validateResponse(rec, httptest.NewRequest(c.method, c.target, nil), c.status, c.header, []byte(c.body))
		if len(rec.failures) > 0 {
			t.Errorf("%s %s %d: %s", c.method, c.target, c.status, strings.Join(rec.failures, "\n"))
		}
	}
}

func TestValidateResponse_WrongAnswerFails(t *testing.T) {
	doc := fixture(t)
	json := http.Header{"Content-Type": {"application/json"}}
	for _, c := range []struct {
		name, method, target string
		status               int
		header               http.Header
		body                 string
		mention              string
	}{
		{"field of another name", "GET", "/things/7", 200, json, `{"id":7,"title":"seven"}`, "title"},
		{"field of another type", "GET", "/things/7", 200, json, `{"id":"7","name":"seven"}`, "id"},
		{"undocumented status", "GET", "/things/7", 418, json, `{"code":418,"message":"teapot"}`, "418"},
		{"503 without Retry-After", "GET", "/things/7", 503, json, `{"code":503,"message":"later"}`, "Retry-After"},
		{"another content type", "GET", "/things/7", 200, http.Header{"Content-Type": {"text/plain"}}, `seven`, "text/plain"},
		{"unknown path", "GET", "/nowhere", 200, json, `{}`, "/nowhere"},
		{"unknown method", "DELETE", "/things/7", 200, json, `{}`, "DELETE /things/7"},
	} {
		t.Run(c.name, func(t *testing.T) {
			rec := &recorder{}
			doc.validateResponse(rec, httptest.NewRequest(c.method, c.target, nil), c.status, c.header, []byte(c.body))
			rec.expectFailure(t, c.mention)
		})
	}
}

// Check against the real document, on answers from app.Test, as the services' tests get them.
func TestCheck_AnswersOfAnAppAgainstTheDocument(t *testing.T) {
	app := newApp()
	app.Get("/api/vms/:ref", func(c *fiber.Ctx) error {
		if c.Params("ref") == "mine" {
			return web.Unauthorized()
		}
		return c.JSON(fiber.Map{"id": 1, "uuid": "not the VM's fields"})
	})

	req := httptest.NewRequest("GET", "/api/vms/mine", nil)
	resp, err := app.Test(req)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	Check(rec, req, resp)
	rec.expectPass(t)
	if body, _ := io.ReadAll(resp.Body); !strings.Contains(string(body), "Authentication required") {
		t.Fatalf("the body was not put back: %q", body)
	}

	req = httptest.NewRequest("GET", "/api/vms/7", nil)
	if resp, err = app.Test(req); err != nil {
		t.Fatal(err)
	}
	rec = &recorder{}
	Check(rec, req, resp)
	rec.expectFailure(t, "GET /api/vms/7", "200")
}
