package service

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"limen/libs/config"
	"limen/libs/testkit/apidoc"
	"limen/libs/testkit/jwttest"
)

// TestRoutes_AreTheDocumentedOnes holds the gateway's own routes, public and internal, to
// docs/openapi.yaml, and its own answers to their schemas.
func TestRoutes_AreTheDocumentedOnes(t *testing.T) {
	t.Setenv("LIMEN_JWKS_URL", jwttest.New(t).JWKSURL)
	t.Setenv("KAFKA_BROKERS", "")
	cfg, err := config.Load[Config]()
	if err != nil {
		t.Fatal(err)
	}
	svc, err := New(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	apidoc.CheckRoutes(t, Name, svc.App(), svc.internal)
	for _, path := range []string{"/api/health", "/api/openapi.json", "/api/docs"} {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		resp, err := svc.App().Test(req, 10_000)
		if err != nil {
			t.Fatal(err)
		}
		apidoc.Check(t, req, resp)
		resp.Body.Close()
	}
}
