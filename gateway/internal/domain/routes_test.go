package domain_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"limen/gateway/internal/domain"
)

func TestResolve_ContractPaths(t *testing.T) {
	cases := []struct {
		method, path string
		upstream     domain.Upstream
		public       bool
	}{
		{"POST", "/api/auth/register", domain.UpstreamAuth, true},
		{"POST", "/api/auth/login", domain.UpstreamAuth, true},
		{"POST", "/api/auth/refresh", domain.UpstreamAuth, true},
		{"GET", "/api/auth/jwks", domain.UpstreamAuth, true},
		{"POST", "/api/auth/logout", domain.UpstreamAuth, false},
		{"GET", "/api/auth/me", domain.UpstreamAuth, false},
		{"GET", "/api/auth/login", domain.UpstreamAuth, false},
		{"GET", "/api/auth/session", domain.UpstreamAuth, false},
		{"POST", "/api/auth/session", domain.UpstreamAuth, false},
		{"DELETE", "/api/auth/session", domain.UpstreamAuth, true},
		{"DELETE", "/api/auth/session/x", domain.UpstreamAuth, false},
		{"GET", "/api/admin/users", domain.UpstreamAuth, false},
		{"PUT", "/api/admin/users/3/approve", domain.UpstreamAuth, false},
		{"GET", "/api/vms", domain.UpstreamVM, false},
		{"GET", "/api/vms/", domain.UpstreamVM, false},
		{"POST", "/api/vms", domain.UpstreamVM, false},
		{"GET", "/api/vms/os-types", domain.UpstreamVM, false},
		{"GET", "/api/vms/550e8400-e29b-41d4-a716-446655440000", domain.UpstreamVM, false},
		{"POST", "/api/vms/12/action", domain.UpstreamVM, false},
		{"GET", "/api/vms/550e8400-e29b-41d4-a716-446655440000/boot-order", domain.UpstreamVM, false},
		{"POST", "/api/vms/12/boot-order", domain.UpstreamVM, false},
		{"POST", "/api/vms/550e8400-e29b-41d4-a716-446655440000/finalize-install", domain.UpstreamVM, false},
		{"GET", "/api/vms/12/snapshots", domain.UpstreamVM, false},
		{"POST", "/api/snapshots/4/restore", domain.UpstreamVM, false},
		{"POST", "/api/vms/12/snapshots", domain.UpstreamVM, false},
		{"DELETE", "/api/snapshots/4", domain.UpstreamVM, false},
		{"GET", "/api/vms/isos", domain.UpstreamMedia, false},
		{"POST", "/api/vms/isos", domain.UpstreamMedia, false},
		{"DELETE", "/api/vms/isos/debian.iso", domain.UpstreamMedia, false},
		{"GET", "/api/vms/12/media", domain.UpstreamMedia, false},
		{"POST", "/api/vms/550e8400-e29b-41d4-a716-446655440000/media", domain.UpstreamMedia, false},
		{"GET", "/api/quota", domain.UpstreamQuota, false},
		{"PUT", "/api/quota", domain.UpstreamQuota, false},
		{"GET", "/api/admin/quotas", domain.UpstreamQuota, false},
	}
	for _, tc := range cases {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			r, err := domain.Resolve(tc.method, tc.path)
			if err != nil || r.Upstream != tc.upstream || r.Public != tc.public {
				t.Fatalf("got %+v, %v", r, err)
			}
		})
	}
}

func TestResolve_RefusesInternalAndTraversal(t *testing.T) {
	cases := map[string]error{
		"/internal/vms/1":                 domain.ErrNotRouted,
		"/api/internal/vms/1":             domain.ErrNotRouted,
		"/api/../internal/vms/1":          domain.ErrBadPath,
		"/api/vms/%2e%2e/%2e%2e/internal": domain.ErrBadPath,
		"/api/vms/%2E%2E/x":               domain.ErrBadPath,
		"/api/vms/./1":                    domain.ErrBadPath,
		"/api//vms":                       domain.ErrBadPath,
		"/api/vms/%zz":                    domain.ErrBadPath,
		"/api/vms/a%5c..%5cb":             domain.ErrBadPath,
		"/api/vms/%00":                    domain.ErrBadPath,
		"/api":                            domain.ErrNotRouted,
		"/api/nothing":                    domain.ErrNotRouted,
		"/metrics":                        domain.ErrNotRouted,
	}
	for path, want := range cases {
		t.Run(path, func(t *testing.T) {
			if _, err := domain.Resolve("GET", path); !errors.Is(err, want) {
				t.Fatalf("got %v, want %v", err, want)
			}
		})
	}
}

func TestResolve_Timeouts_VMServiceOutlastsAGracefulStop(t *testing.T) {
	cases := []struct {
		method, path string
		timeout      time.Duration
	}{
		{"POST", "/api/vms/12/action", domain.VMTimeout},
		{"GET", "/api/vms", domain.VMTimeout},
		{"POST", "/api/snapshots/4/restore", domain.VMTimeout},
		{"POST", "/api/vms/12/boot-order", domain.VMTimeout},
		{"POST", "/api/vms/12/finalize-install", domain.VMTimeout},
		{"POST", "/api/auth/login", domain.AuthTimeout},
		{"DELETE", "/api/auth/session", domain.AuthTimeout},
		{"GET", "/api/admin/users", domain.AuthTimeout},
		{"POST", "/api/vms/12/media", 0},
		{"GET", "/api/quota", 0},
	}
	for _, tc := range cases {
		r, err := domain.Resolve(tc.method, tc.path)
		if err != nil || r.Timeout != tc.timeout {
			t.Errorf("%s %s: got %+v, %v; want timeout %s", tc.method, tc.path, r, err, tc.timeout)
		}
	}
	// A stop waits up to about two minutes for the guest before forcing it off.
	if domain.VMTimeout < 2*time.Minute {
		t.Errorf("VMTimeout %s is shorter than a graceful stop", domain.VMTimeout)
	}
}

func TestResolve_OnlyTheISOUploadIsStreamed(t *testing.T) {
	uploads := map[string]bool{
		"POST /api/vms/isos":            true,
		"POST /api/vms/isos/":           true,
		"POST /api/vms/%69sos":          true, // the same path, escaped: still the upload
		"GET /api/vms/isos":             false,
		"PUT /api/vms/isos":             false,
		"DELETE /api/vms/isos/x.iso":    false,
		"POST /api/vms/isos/x.iso":      false,
		"POST /api/vms":                 false,
		"POST /api/vms/12/media":        false,
		"POST /api/vms/12/action":       false,
		"POST /api/auth/login":          false,
		"POST /api/admin/isos":          false,
		"POST /api/quota":               false,
		"POST /api/vms/isos/../isos":    false, // refused as a bad path anyway
		"POST /api/vms/12/snapshots":    false,
		"POST /api/snapshots/4/restore": false,
	}
	for req, want := range uploads {
		method, path, _ := strings.Cut(req, " ")
		r, err := domain.Resolve(method, path)
		if r.Upload != want {
			t.Errorf("%s: Upload %v (%+v, %v), want %v", req, r.Upload, r, err, want)
		}
		if want && (err != nil || r.Upstream != domain.UpstreamMedia || r.Public) {
			t.Errorf("%s: got %+v, %v; want the media service, authenticated", req, r, err)
		}
	}
}

func TestResolve_TheGatewayAnswersItsOwnRoutesToAnyone(t *testing.T) {
	own := []string{
		"GET /api/health", "HEAD /api/health", "GET /api/health/",
		"GET /api/openapi.json", "HEAD /api/openapi.json", "GET /api/openapi%2Ejson",
		"GET /api/docs", "GET /api/docs/", "GET /api/docs/swagger-ui.css", "HEAD /api/docs/swagger-ui-bundle.js",
	}
	for _, req := range own {
		method, path, _ := strings.Cut(req, " ")
		if r, err := domain.Resolve(method, path); err != nil || r != (domain.Route{Upstream: domain.UpstreamGateway, Public: true}) {
			t.Errorf("%s: got %+v, %v; want the gateway's own public route", req, r, err)
		}
	}
	notRouted := []string{
		"POST /api/health", "DELETE /api/openapi.json", "PUT /api/docs", "OPTIONS /api/docs",
		"GET /api/health/x", "GET /api/openapi.json/x", "GET /api/docs/a/b", "GET /api/openapi.yaml",
	}
	for _, req := range notRouted {
		method, path, _ := strings.Cut(req, " ")
		if r, err := domain.Resolve(method, path); !errors.Is(err, domain.ErrNotRouted) {
			t.Errorf("%s: got %+v, %v; want ErrNotRouted", req, r, err)
		}
	}
	if slices.Contains(domain.Upstreams, domain.UpstreamGateway) {
		t.Error("the gateway is listed among the services health reports")
	}
}
