package http_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"limen/gateway/internal/domain"
	"limen/libs/authn"
)

// The header hygiene, one pass over each side: what the client must not decide and the hop-by-hop
// headers never reach the service, in any letter case, and the service's hop-by-hop headers, CORS
// headers and request id never reach the client. The service is asked at its own address, below the
// path of its base URL.
func TestProxy_HeaderHygieneBothWays(t *testing.T) {
	var seen struct {
		Host, URI string
		Headers   http.Header
	}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Host, seen.URI, seen.Headers = r.Host, r.RequestURI, r.Header.Clone()
		h := w.Header()
		h["keep-alive"] = []string{"timeout=5"}
		h["Proxy-Authenticate"] = []string{"Basic"}
		h["upgrade"] = []string{"h2c"}
		h["access-control-allow-origin"] = []string{"*"}
		h["X-REQUEST-ID"] = []string{"the-service's"}
		h.Set("X-Kept", "yes")
		_ = json.NewEncoder(w).Encode(map[string]string{"ok": "yes"})
	}))
	t.Cleanup(up.Close)
	g := startGateway(t, map[domain.Upstream]string{domain.UpstreamVM: up.URL + "/base"})
	host := strings.TrimPrefix(g.url, "http://")
	token := g.issuer.Token(t, 7, authn.RoleUser)

	r := g.rawRequest(t, "GET /api/vms/12?x=%2F&y HTTP/1.1\r\nHost: "+host+"\r\nAuthorization: Bearer "+token+
		"\r\nkeep-alive: timeout=9\r\nproxy-authorization: Basic eDp5\r\nTE: trailers\r\nx-user-id: 1\r\nX-LIMEN-ROLE: admin"+
		"\r\nx-forwarded-host: evil.example\r\nX-Request-ID: req-7\r\nX-Kept: yes\r\nConnection: close\r\n\r\n")
	if r.status != 200 {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	if seen.URI != "/base/api/vms/12?x=%2F&y" || seen.Host != strings.TrimPrefix(up.URL, "http://") {
		t.Errorf("service asked for %q at %q", seen.URI, seen.Host)
	}
	for _, name := range []string{"Keep-Alive", "Proxy-Authorization", "Te", "X-User-Id", "X-Limen-Role"} {
		if v := seen.Headers.Values(name); len(v) > 0 {
			t.Errorf("%s forwarded: %q", name, v)
		}
	}
	if seen.Headers.Get("X-Forwarded-Host") != host || seen.Headers.Get("X-Kept") != "yes" || seen.Headers.Get("X-Request-Id") != "req-7" {
		t.Errorf("forwarded: %v", seen.Headers)
	}
	for _, name := range []string{"Keep-Alive", "Proxy-Authenticate", "Upgrade", "Access-Control-Allow-Origin"} {
		if v := r.header.Values(name); len(v) > 0 {
			t.Errorf("%s answered: %q", name, v)
		}
	}
	if v := r.header.Values("X-Request-Id"); len(v) != 1 || v[0] != "req-7" || r.header.Get("X-Kept") != "yes" {
		t.Errorf("answer: %v", r.header)
	}
}
