package http_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gofiber/fiber/v2"

	porthttp "limen/gateway/internal/ports/http"
	"limen/libs/web"
)

func TestCheckOrigins_RefusesWhatNoBrowserSends(t *testing.T) {
	for _, good := range [][]string{nil, {"http://localhost:3000"}, {"https://app.example", "https://*.limen.example", ""}, {"HTTPS://App.Example/"}} {
		if err := porthttp.CheckOrigins(good); err != nil {
			t.Errorf("%q: %v", good, err)
		}
	}
	for _, bad := range []string{"localhost:3000", "*", "null", "ftp://files.example", "https://app.example/path", "https://user@app.example", "https://"} {
		if err := porthttp.CheckOrigins([]string{"http://localhost:3000", bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// Even an answer that never comes back through the middleware, a panic's, is readable by the page.
func TestCORS_APanicsAnswerCarriesTheHeadersOnce(t *testing.T) {
	const page = "http://localhost:3000"
	app := web.NewApp(web.AppConfig{Service: "gateway", Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Edge: []fiber.Handler{porthttp.CORS([]string{page})}})
	app.Get("/boom", func(*fiber.Ctx) error { panic("boom") })
	req := httptest.NewRequest(http.MethodGet, "/boom", nil)
	req.Header.Set("Origin", page)
	resp, err := app.Test(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for name, want := range map[string]string{"Access-Control-Allow-Origin": page, "Access-Control-Allow-Credentials": "true", "Vary": "Origin"} {
		if got := resp.Header.Values(name); resp.StatusCode != 500 || len(got) != 1 || got[0] != want {
			t.Errorf("%d %s: %q", resp.StatusCode, name, got)
		}
	}
}
