package http_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gofiber/fiber/v2"

	"limen/gateway/internal/domain"
	porthttp "limen/gateway/internal/ports/http"
)

// everyService is every service deployed at one server that counts what reaches it.
func everyService(t *testing.T) (map[domain.Upstream]string, *atomic.Int32) {
	t.Helper()
	var asked atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		asked.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{}`))
	}))
	t.Cleanup(srv.Close)
	bases := map[domain.Upstream]string{}
	for _, u := range domain.Upstreams {
		bases[u] = srv.URL
	}
	return bases, &asked
}

func TestAPIDocs_TheDocumentIsServedAsJSONToAnyone(t *testing.T) {
	bases, asked := everyService(t)
	g := startGateway(t, bases)

	r := g.do(t, "GET", domain.OpenAPIPath, "", "")
	if r.status != 200 || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("%d %q %.200s", r.status, r.header.Get("Content-Type"), r.raw)
	}
	var document struct {
		OpenAPI string                    `json:"openapi"`
		Paths   map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal([]byte(r.raw), &document); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(document.OpenAPI, "3.") || document.Paths[domain.HealthPath]["get"] == nil || len(document.Paths) < 10 {
		t.Fatalf("openapi %q, %d paths: %.300s", document.OpenAPI, len(document.Paths), r.raw)
	}
	if head := g.do(t, "HEAD", domain.OpenAPIPath, "", ""); head.status != 200 || head.raw != "" {
		t.Fatalf("HEAD: %d %q", head.status, head.raw)
	}
	if n := asked.Load(); n != 0 {
		t.Fatalf("%d requests reached a service", n)
	}
}

func TestAPIDocs_ThePageAndItsFilesAreServedByTheGateway(t *testing.T) {
	bases, asked := everyService(t)
	g := startGateway(t, bases)

	page := g.do(t, "GET", domain.DocsPath, "", "")
	if page.status != 200 || page.header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("%d %q", page.status, page.header.Get("Content-Type"))
	}
	for _, want := range []string{"<title>LIMEN API", `<div id="swagger-ui">`, domain.DocsPath + "/swagger-ui.css",
		domain.DocsPath + "/swagger-ui-bundle.js", domain.DocsPath + "/start.js"} {
		if !strings.Contains(page.raw, want) {
			t.Errorf("the page lacks %q:\n%s", want, page.raw)
		}
	}
	files := map[string]struct{ contentType, contains string }{
		"swagger-ui.css":       {"text/css; charset=utf-8", ".swagger-ui"},
		"swagger-ui-bundle.js": {"text/javascript; charset=utf-8", "SwaggerUIBundle"},
		"start.js":             {"text/javascript; charset=utf-8", `"` + domain.OpenAPIPath + `"`},
	}
	for name, want := range files {
		r := g.do(t, "GET", domain.DocsPath+"/"+name, "", "")
		if r.status != 200 || r.header.Get("Content-Type") != want.contentType || !strings.Contains(r.raw, want.contains) {
			t.Errorf("%s: %d %q %.100s", name, r.status, r.header.Get("Content-Type"), r.raw)
		}
	}
	if r := g.do(t, "GET", domain.DocsPath+"/index.html", "", ""); r.status != 404 || r.raw != `{"code":404,"message":"Not found"}` {
		t.Errorf("a Swagger UI file the page does not load: %d %s", r.status, r.raw)
	}
	if n := asked.Load(); n != 0 {
		t.Fatalf("%d requests reached a service", n)
	}
}

func TestAPIDocs_OnlyReadingIsAnswered(t *testing.T) {
	bases, asked := everyService(t)
	g := startGateway(t, bases)
	token := g.issuer.Token(t, 1, "admin")
	for _, req := range []string{"POST " + domain.OpenAPIPath, "PUT " + domain.DocsPath, "DELETE " + domain.DocsPath + "/start.js",
		"GET /api/%64ocs", "GET /api/openapi%2Ejson"} {
		method, path, _ := strings.Cut(req, " ")
		if r := g.do(t, method, path, token, ""); r.status != 404 || r.raw != `{"code":404,"message":"Not found"}` {
			t.Errorf("%s: %d %s", req, r.status, r.raw)
		}
	}
	if n := asked.Load(); n != 0 {
		t.Fatalf("%d requests reached a service", n)
	}
}

func TestAPIDocs_YAMLBecomesJSONInTheDocumentsOrder(t *testing.T) {
	docs, err := porthttp.NewAPIDocs([]byte(`openapi: 3.1.0
info: {title: "Test <API>", version: "1"}
paths:
  /b:
    get:
      responses:
        200: &ok {description: OK}
        "404": *ok
  /a:
    get: {deprecated: true, tags: [x, y], x-limit: 1.5, x-none: null}
`))
	if err != nil {
		t.Fatal(err)
	}
	app := fiber.New()
	app.Get("/doc", docs.Document)
	app.Get("/page", docs.Page)
	want := `{"openapi":"3.1.0","info":{"title":"Test \u003cAPI\u003e","version":"1"},"paths":{"/b":{"get":{"responses":` +
		`{"200":{"description":"OK"},"404":{"description":"OK"}}}},"/a":{"get":{"deprecated":true,"tags":["x","y"],"x-limit":1.5,"x-none":null}}}}`
	if got := answer(t, app, "/doc"); got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	if page := answer(t, app, "/page"); !strings.Contains(page, "<title>Test &lt;API&gt;</title>") {
		t.Fatalf("page title: %s", page)
	}

	for name, bad := range map[string]string{"not YAML": "a: [", "two documents": "a: 1\n---\nb: 2\n", "a merge key": "base: &b {x: 1}\nc: {<<: *b}\n"} {
		if _, err := porthttp.NewAPIDocs([]byte(bad)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func answer(t *testing.T, app *fiber.App, path string) string {
	t.Helper()
	resp, err := app.Test(httptest.NewRequest("GET", path, nil))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body)
}
