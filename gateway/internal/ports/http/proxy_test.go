package http_test

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"limen/docs"
	"limen/gateway/internal/app"
	"limen/gateway/internal/domain"
	porthttp "limen/gateway/internal/ports/http"
	"limen/libs/authn"
	"limen/libs/testkit/jwttest"
	"limen/libs/web"
)

// echo answers with what it received, so tests can see what the gateway forwarded.
func echo(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/readyz":
			_, _ = w.Write([]byte(`{"status":"ok","checks":{"db":"connected"}}`))
			return
		case "/api/quota/slow":
			time.Sleep(2 * time.Second)
		}
		body, _ := io.ReadAll(r.Body)
		headers := map[string]string{}
		for k := range r.Header {
			headers[strings.ToLower(k)] = r.Header.Get(k)
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"method": r.Method, "uri": r.RequestURI, "headers": headers, "body": string(body)})
	}))
	t.Cleanup(srv.Close)
	return srv
}

type gateway struct {
	url    string
	issuer *jwttest.KeyIssuer
}

func startGateway(t *testing.T, bases map[domain.Upstream]string) gateway {
	t.Helper()
	return startGatewayWith(t, bases, 1<<10, nil)
}

// startGatewayWith is the gateway as main wires it (uploads streamed, bodyLimit elsewhere), with
// configure adjusting the proxy.
func startGatewayWith(t *testing.T, bases map[domain.Upstream]string, bodyLimit int, configure func(*porthttp.Proxy)) gateway {
	t.Helper()
	return startGatewayTrusting(t, bases, bodyLimit, nil, configure)
}

// startGatewayTrusting is startGatewayWith behind the trusted proxies (LIMEN_TRUSTED_PROXIES).
func startGatewayTrusting(t *testing.T, bases map[domain.Upstream]string, bodyLimit int, trusted []string, configure func(*porthttp.Proxy)) gateway {
	t.Helper()
	issuer := jwttest.New(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	verifier, err := authn.NewVerifier(ctx, authn.VerifierConfig{JWKSURL: issuer.JWKSURL, Issuer: jwttest.Issuer, Audience: jwttest.Audience})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	fiberApp := web.NewApp(web.AppConfig{Service: "gateway", Logger: log, BodyLimit: bodyLimit,
		StreamRequestBody: true, Upload: porthttp.IsUpload, TrustedProxies: trusted, SeparateInternal: true})
	health := app.HealthSources{Services: readinessOf(bases), Timeout: time.Second, Now: time.Now}
	for u := range bases {
		health.Deployed = append(health.Deployed, u)
	}
	proxy := porthttp.NewProxy(bases, time.Second)
	if configure != nil {
		configure(proxy)
	}
	apiDocs, err := porthttp.NewAPIDocs(docs.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	porthttp.Mount(fiberApp, app.Application{Queries: app.Queries{CheckHealth: app.NewCheckHealthHandler(health)}},
		porthttp.Routes{Verifier: verifier, Proxy: proxy, APIDocs: apiDocs})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = fiberApp.Listener(ln) }()
	t.Cleanup(func() { _ = fiberApp.Shutdown() })
	return gateway{url: "http://" + ln.Addr().String(), issuer: issuer}
}

type reply struct {
	status int
	body   map[string]any
	raw    string
	header http.Header
}

func (g gateway) do(t *testing.T, method, path, token, body string, headers ...string) reply {
	t.Helper()
	req, err := http.NewRequest(method, g.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	return send(t, req, token, headers...)
}

// send adds the token and the header pairs to req and returns the gateway's reply.
func send(t *testing.T, req *http.Request, token string, headers ...string) reply {
	t.Helper()
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, raw: string(raw), header: resp.Header}
	_ = json.Unmarshal(raw, &r.body)
	return r
}

func (r reply) forwarded(name string) string {
	h, _ := r.body["headers"].(map[string]any)
	v, _ := h[strings.ToLower(name)].(string)
	return v
}

func TestProxy_ValidTokenIsForwardedWithItsPathAndBody(t *testing.T) {
	up := echo(t)
	g := startGateway(t, map[domain.Upstream]string{domain.UpstreamVM: up.URL})
	token := g.issuer.Token(t, 7, authn.RoleUser)
	r := g.do(t, "POST", "/api/vms/12/action?x=1", token, `{"action":"start"}`)
	if r.status != 200 || r.body["uri"] != "/api/vms/12/action?x=1" || r.body["body"] != `{"action":"start"}` || r.forwarded("Authorization") != "Bearer "+token {
		t.Fatalf("%d %s", r.status, r.raw)
	}
}

func TestProxy_MissingOrForgedTokens_Answer401(t *testing.T) {
	up := echo(t)
	g := startGateway(t, map[domain.Upstream]string{domain.UpstreamVM: up.URL})
	valid := g.issuer.Token(t, 7, authn.RoleUser)
	parts := strings.Split(valid, ".")

	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, jwttest.Claims(7, authn.RoleAdmin)).SignedString(jwt.UnsafeAllowNoneSignatureType)
	hs := jwt.NewWithClaims(jwt.SigningMethodHS256, jwttest.Claims(7, authn.RoleAdmin))
	hs.Header["kid"] = g.issuer.KID
	hsToken, _ := hs.SignedString([]byte(g.issuer.Private.Public().(ed25519.PublicKey)))
	expired := jwttest.Claims(7, authn.RoleUser)
	expired.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-time.Hour))
	refresh := jwttest.Claims(7, authn.RoleUser)
	refresh.Type = authn.TokenTypeRefresh
	unknownKid := jwt.NewWithClaims(authn.SigningMethod, jwttest.Claims(7, authn.RoleUser))
	unknownKid.Header["kid"] = "nobody"
	unknownKidToken, _ := unknownKid.SignedString(g.issuer.Private)
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"1","user_id":1,"role":"admin","typ":"access","iss":"limen","aud":["limen-api"],"exp":9999999999,"iat":1}`)) + "." + parts[2]

	cases := map[string]string{
		"missing": "", "malformed": "abc", "alg none": none, "HS256 with the public key": hsToken,
		"expired": g.issuer.Sign(t, expired), "refresh token": g.issuer.Sign(t, refresh),
		"unknown kid": unknownKidToken, "tampered payload": tampered,
	}
	for name, token := range cases {
		t.Run(name, func(t *testing.T) {
			r := g.do(t, "GET", "/api/vms", token, "")
			if r.status != 401 || r.raw != `{"code":401,"message":"Authentication required"}` {
				t.Fatalf("%d %s", r.status, r.raw)
			}
		})
	}
	r := g.do(t, "GET", "/api/vms", "", "", "Authorization", "Basic dXNlcjpwYXNz")
	if r.status != 401 {
		t.Fatalf("basic auth: %d", r.status)
	}
}

func TestProxy_PublicRoutesNeedNoToken(t *testing.T) {
	up := echo(t)
	g := startGateway(t, map[domain.Upstream]string{domain.UpstreamAuth: up.URL})
	for _, path := range []string{"/api/auth/login", "/api/auth/register", "/api/auth/refresh"} {
		if r := g.do(t, "POST", path, "", `{}`); r.status != 200 {
			t.Fatalf("%s: %d %s", path, r.status, r.raw)
		}
	}
	if r := g.do(t, "GET", "/api/auth/jwks", "", ""); r.status != 200 {
		t.Fatalf("jwks: %d", r.status)
	}
	if r := g.do(t, "GET", "/api/auth/me", "", ""); r.status != 401 {
		t.Fatalf("me without token: %d", r.status)
	}
}

func TestProxy_ReplacesIdentityAndForwardingHeaders(t *testing.T) {
	up := echo(t)
	g := startGateway(t, map[domain.Upstream]string{domain.UpstreamVM: up.URL})
	r := g.do(t, "GET", "/api/vms", g.issuer.Token(t, 7, authn.RoleUser), "",
		"X-Forwarded-For", "6.6.6.6", "X-Real-IP", "6.6.6.6", "X-User-ID", "1", "X-User-Role", "admin",
		"X-Limen-Internal", "1", "Forwarded", "for=6.6.6.6", "X-Request-ID", "req-42",
		"Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	for _, h := range []string{"X-Real-IP", "X-User-ID", "X-User-Role", "X-Limen-Internal", "Forwarded"} {
		if v := r.forwarded(h); v != "" {
			t.Errorf("%s forwarded: %q", h, v)
		}
	}
	if r.forwarded("X-Forwarded-For") != "127.0.0.1" || r.forwarded("X-Forwarded-Proto") != "http" {
		t.Errorf("forwarding headers: %s", r.raw)
	}
	if r.forwarded("X-Request-ID") != "req-42" || r.header.Get("X-Request-ID") != "req-42" {
		t.Errorf("request id: %s", r.raw)
	}
	if tp := r.forwarded("Traceparent"); !strings.Contains(tp, "4bf92f3577b34da6a3ce929d0e0e4736") {
		t.Errorf("trace not continued: %q", tp)
	}
	made := g.do(t, "GET", "/api/vms", g.issuer.Token(t, 7, authn.RoleUser), "")
	if made.forwarded("X-Request-ID") == "" {
		t.Error("no request id made")
	}
}

func TestProxy_RefusesInternalAndTraversal(t *testing.T) {
	up := echo(t)
	g := startGateway(t, map[domain.Upstream]string{domain.UpstreamVM: up.URL})
	token := g.issuer.Token(t, 1, authn.RoleAdmin)
	for path, status := range map[string]int{
		"/internal/vms/1": 404, "/api/internal/vms/1": 404, "/api/vms/%2e%2e/%2e%2e/internal/vms/1": 400,
		"/api/vms/..%2f..%2finternal": 400, "/api/nothing": 404,
	} {
		if r := g.do(t, "GET", path, token, ""); r.status != status || r.body["code"] != float64(status) {
			t.Errorf("%s: %d %s", path, r.status, r.raw)
		}
	}
}

func TestProxy_UpstreamFailures(t *testing.T) {
	up := echo(t)
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()
	g := startGateway(t, map[domain.Upstream]string{domain.UpstreamVM: up.URL, domain.UpstreamQuota: deadURL})
	token := g.issuer.Token(t, 7, authn.RoleUser)
	slow := startGateway(t, map[domain.Upstream]string{domain.UpstreamQuota: up.URL})
	if r := slow.do(t, "GET", "/api/quota/slow", slow.issuer.Token(t, 7, authn.RoleUser), ""); r.status != 504 || r.body["message"] != "Upstream timeout" {
		t.Errorf("slow: %d %s", r.status, r.raw)
	}
	if r := g.do(t, "GET", "/api/quota", token, ""); r.status != 502 {
		t.Errorf("dead: %d %s", r.status, r.raw)
	}
	if r := g.do(t, "GET", "/api/vms/isos", token, ""); r.status != 503 || r.body["message"] != "Service unavailable" {
		t.Errorf("not deployed: %d %s", r.status, r.raw)
	}
	if r := g.do(t, "POST", "/api/vms", token, `{"name":"`+strings.Repeat("a", 2048)+`"}`); r.status != 413 {
		t.Errorf("oversized: %d %s", r.status, r.raw)
	}
}

func TestHealth_ReportsDeployedServices(t *testing.T) {
	up := echo(t)
	g := startGateway(t, map[domain.Upstream]string{domain.UpstreamAuth: up.URL})
	r := g.do(t, "GET", "/api/health", "", "")
	if r.status != 200 || r.body["status"] != "ok" || r.body["db"] != "connected" || r.body["services"].(map[string]any)["auth"] != "ok" {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	up.Close()
	down := startGateway(t, map[domain.Upstream]string{domain.UpstreamAuth: up.URL})
	r = down.do(t, "GET", "/api/health", "", "")
	if r.status != 503 || r.body["status"] != "degraded" || r.body["services"].(map[string]any)["auth"] != "down" {
		t.Fatalf("%d %s", r.status, r.raw)
	}
}
