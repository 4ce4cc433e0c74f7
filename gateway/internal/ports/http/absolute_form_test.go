package http_test

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"limen/gateway/internal/domain"
	"limen/libs/authn"
)

// rawRequest writes request bytes to the gateway over TCP, exactly as given, and reads one answer.
func (g gateway) rawRequest(t *testing.T, request string) reply {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(g.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(conn, request); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no HTTP answer: %v", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, raw: string(raw), header: resp.Header}
	_ = json.Unmarshal(raw, &r.body)
	return r
}

// A request line in absolute form (RFC 9112 3.2.2: `GET http://host/path`, which servers must accept)
// is served as its origin form: the service sees the path and query only.
func TestProxy_AbsoluteFormRequestLineIsServedLikeOriginForm(t *testing.T) {
	up := echo(t)
	g := startGateway(t, map[domain.Upstream]string{domain.UpstreamVM: up.URL, domain.UpstreamAuth: up.URL, domain.UpstreamMedia: up.URL})
	host := strings.TrimPrefix(g.url, "http://")
	token := g.issuer.Token(t, 7, authn.RoleUser)
	for name, tc := range map[string]struct{ target, hostHeader, want string }{
		"path":                {"http://" + host + "/api/vms", host, "/api/vms"},
		"path and query":      {"http://" + host + "/api/vms?all=true&x=%2F", host, "/api/vms?all=true&x=%2F"},
		"other host header":   {"http://" + host + "/api/vms/12", "elsewhere.example", "/api/vms/12"},
		"public route":        {"http://" + host + "/api/auth/jwks", host, "/api/auth/jwks"},
		"https scheme, named": {"https://gateway.example/api/vms", "gateway.example", "/api/vms"},
	} {
		t.Run(name, func(t *testing.T) {
			r := g.rawRequest(t, "GET "+tc.target+" HTTP/1.1\r\nHost: "+tc.hostHeader+"\r\nAuthorization: Bearer "+token+"\r\nConnection: close\r\n\r\n")
			if r.status != 200 || r.body["uri"] != tc.want || r.body["method"] != "GET" {
				t.Fatalf("%d %s", r.status, r.raw)
			}
		})
	}
	// A streamed upload takes the same way.
	admin := g.issuer.Token(t, 1, authn.RoleAdmin)
	up2 := g.rawRequest(t, "POST http://"+host+"/api/vms/isos?name=a.iso HTTP/1.1\r\nHost: "+host+"\r\nAuthorization: Bearer "+admin+
		"\r\nContent-Type: application/octet-stream\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello")
	if up2.status != 200 || up2.body["uri"] != "/api/vms/isos?name=a.iso" || up2.body["body"] != "hello" {
		t.Fatalf("upload: %d %s", up2.status, up2.raw)
	}
	// The absolute form is no way around the route checks.
	for target, status := range map[string]int{
		"http://" + host + "/internal/vms/1":                  404,
		"http://" + host + "/api/vms/..%2f..%2finternal":      400,
		"http://" + host + "/api/vms/%2e%2e/%2e%2e/internal/": 400,
	} {
		r := g.rawRequest(t, "GET "+target+" HTTP/1.1\r\nHost: "+host+"\r\nAuthorization: Bearer "+token+"\r\nConnection: close\r\n\r\n")
		if r.status != status || r.body["code"] != float64(status) {
			t.Errorf("%s: %d %s", target, r.status, r.raw)
		}
	}
	// Without a token a protected route is still refused.
	if r := g.rawRequest(t, "GET http://"+host+"/api/vms HTTP/1.1\r\nHost: "+host+"\r\nConnection: close\r\n\r\n"); r.status != 401 {
		t.Fatalf("no token: %d %s", r.status, r.raw)
	}
}
