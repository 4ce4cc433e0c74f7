package vmclient_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"limen/gateway/internal/adapters/vmclient"
)

func server(t *testing.T, status int, body string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/vms" || r.Header.Get("Authorization") != "Bearer tok" {
			http.Error(w, `{"code":401}`, http.StatusUnauthorized)
			return
		}
		if r.URL.Query().Get("all") == "true" {
			body = `["all"]`
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestListVMs_ForwardsTheUsersToken(t *testing.T) {
	srv := server(t, 200, ` [{"id":1,"uuid":"u"}] `)
	got, err := vmclient.New(srv.URL).ListVMs(context.Background(), "tok", false)
	if err != nil || string(got) != `[{"id":1,"uuid":"u"}]` {
		t.Fatalf("%s %v", got, err)
	}
	if got, err := vmclient.New(srv.URL).ListVMs(context.Background(), "tok", true); err != nil || string(got) != `["all"]` {
		t.Fatalf("all: %s %v", got, err)
	}
	if _, err := vmclient.New(srv.URL).ListVMs(context.Background(), "other", false); err == nil {
		t.Fatal("a refused token gave a list")
	}
}

func TestListVMs_NullIsAnEmptyList(t *testing.T) {
	got, err := vmclient.New(server(t, 200, "null").URL).ListVMs(context.Background(), "tok", false)
	if err != nil || string(got) != "[]" {
		t.Fatalf("%s %v", got, err)
	}
}

func TestListVMs_RefusesWhatIsNotAList(t *testing.T) {
	for name, srv := range map[string]*httptest.Server{
		"object":   server(t, 200, `{"vms":[]}`),
		"broken":   server(t, 200, `[{"id":`),
		"error":    server(t, 503, `{"code":503,"message":"Service unavailable"}`),
		"no reply": httptest.NewServer(http.NotFoundHandler()),
	} {
		if name == "no reply" {
			srv.Close()
		}
		if got, err := vmclient.New(srv.URL).ListVMs(context.Background(), "tok", false); err == nil {
			t.Errorf("%s: got %s", name, got)
		}
	}
}
