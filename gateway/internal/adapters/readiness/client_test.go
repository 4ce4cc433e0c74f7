package readiness_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"limen/gateway/internal/adapters/readiness"
	"limen/gateway/internal/domain"
)

func TestReady_ReadsTheServicesChecks(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"status":"degraded","checks":{"db":"connected","libvirt":"disconnected"}}`))
	}))
	defer srv.Close()
	r := readiness.New(map[domain.Upstream]string{domain.UpstreamVM: srv.URL}).Ready(context.Background(), domain.UpstreamVM)
	if !r.Reachable || r.OK || r.Checks["libvirt"] != "disconnected" || r.Checks["db"] != "connected" {
		t.Fatalf("%+v", r)
	}
}

func TestReady_UnreachableService(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close()
	if r := readiness.New(map[domain.Upstream]string{domain.UpstreamVM: srv.URL}).Ready(context.Background(), domain.UpstreamVM); r.Reachable {
		t.Fatalf("%+v", r)
	}
}
