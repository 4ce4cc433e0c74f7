package main

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestProbe(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	defer srv.Close()

	if err := probe(srv.URL+"/healthz", time.Second); err != nil {
		t.Fatalf("2xx must pass: %v", err)
	}
	if err := probe(srv.URL+"/readyz", time.Second); err == nil {
		t.Fatal("503 must fail")
	}
	if err := probe("http://127.0.0.1:1/healthz", time.Second); err == nil {
		t.Fatal("a refused connection must fail")
	}
}
