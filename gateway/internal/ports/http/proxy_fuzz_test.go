package http_test

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"limen/gateway/internal/app"
	"limen/gateway/internal/domain"
	porthttp "limen/gateway/internal/ports/http"
	"limen/libs/authn"
	"limen/libs/testkit/jwttest"
	"limen/libs/web"
)

// fzHit is one request a service behind the fuzzed gateway received, as that service (fasthttp,
// like every LIMEN service) reads it.
type fzHit struct {
	upstream domain.Upstream
	method   string
	uri      string // the request target as received
	rawPath  string // its path, still escaped
	path     string // decoded and normalised: what a service routes on
	token    bool
}

// fzUpstreams are one fasthttp server per service; each records what reaches it.
type fzUpstreams struct {
	mu   sync.Mutex
	hits []fzHit
}

func (u *fzUpstreams) serve(f *testing.F, name domain.Upstream) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		u.mu.Lock()
		u.hits = append(u.hits, fzHit{upstream: name, method: string(ctx.Method()), uri: string(ctx.Request.Header.RequestURI()),
			rawPath: string(ctx.URI().PathOriginal()), path: string(ctx.Path()), token: len(ctx.Request.Header.Peek("Authorization")) > 0})
		u.mu.Unlock()
		ctx.SetContentType("application/json")
		ctx.SetBodyString(`{}`)
	}}
	go func() { _ = srv.Serve(ln) }()
	f.Cleanup(func() { _ = srv.Shutdown() })
	return "http://" + ln.Addr().String()
}

func (u *fzUpstreams) take() []fzHit {
	u.mu.Lock()
	defer u.mu.Unlock()
	hits := u.hits
	u.hits = nil
	return hits
}

// fzMethods are the methods the gateway's router knows (an unknown method is answered 501 Not
// Implemented by Fiber, as RFC 9110 9.1 says, and is not what this target is about).
var fzMethods = []string{"GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "TRACE", "CONNECT"}

// FuzzProxyPath sends one request line with a fuzzed target (origin form, absolute form, encoded
// slashes and dots, anything but CR/LF, which would end the line) to the gateway, wired as
// startGatewayTrusting wires it, over TCP, with every service deployed and answering. Whatever the
// target: the gateway answers below 500; at most one service is asked; the service asked is the
// one domain.Resolve names for the path that service itself reads, which it routes decoded and
// normalised exactly as the gateway judged it (no dot segments, nothing under /internal); and
// without a valid token only the public auth routes reach a service. Seeds:
// testdata/fuzz/FuzzProxyPath.
func FuzzProxyPath(f *testing.F) {
	issuer := jwttest.New(f)
	ctx, cancel := context.WithCancel(context.Background())
	f.Cleanup(cancel)
	verifier, err := authn.NewVerifier(ctx, authn.VerifierConfig{JWKSURL: issuer.JWKSURL, Issuer: jwttest.Issuer, Audience: jwttest.Audience})
	if err != nil {
		f.Fatal(err)
	}
	ups := &fzUpstreams{}
	bases := map[domain.Upstream]string{}
	for _, u := range domain.Upstreams {
		bases[u] = ups.serve(f, u)
	}
	// /api/health asks a readiness server of its own, so that the services see proxied requests only.
	ready := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, `{"status":"ok","checks":{"db":"connected"}}`)
	}))
	f.Cleanup(ready.Close)
	readyBases := map[domain.Upstream]string{}
	for _, u := range domain.Upstreams {
		readyBases[u] = ready.URL
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	fiberApp := web.NewApp(web.AppConfig{Service: "gateway", Logger: log, BodyLimit: 1 << 10,
		StreamRequestBody: true, Upload: porthttp.IsUpload, SeparateInternal: true})
	health := app.NewCheckHealthHandler(app.HealthSources{Services: readinessOf(readyBases), Deployed: domain.Upstreams, Timeout: time.Second, Now: time.Now})
	porthttp.Mount(fiberApp, app.Application{Queries: app.Queries{CheckHealth: health}},
		porthttp.Routes{Verifier: verifier, Proxy: porthttp.NewProxy(bases, 5*time.Second)})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	go func() { _ = fiberApp.Listener(ln) }()
	f.Cleanup(func() { _ = fiberApp.Shutdown() })
	addr := ln.Addr().String()

	f.Fuzz(func(t *testing.T, m uint8, auth uint8, target string) {
		if target == "" || strings.ContainsAny(target, "\r\n") || len(target) > 4096 {
			return // no request line to send; beyond 4 KiB the read buffer answers 431
		}
		method := fzMethods[int(m)%len(fzMethods)]
		token := ""
		switch auth % 4 {
		case 1:
			token = issuer.Token(t, 7, authn.RoleUser)
		case 2:
			token = issuer.Token(t, 1, authn.RoleAdmin)
		case 3:
			token = "not-a-token"
		}
		validToken := auth%4 == 1 || auth%4 == 2
		request := method + " " + target + " HTTP/1.1\r\nHost: gateway.example\r\nContent-Length: 0\r\nConnection: close\r\n"
		if token != "" {
			request += "Authorization: Bearer " + token + "\r\n"
		}
		status := fzRoundTrip(t, addr, method, request+"\r\n")
		hits := ups.take()
		if status >= 500 {
			t.Fatalf("%s %q (token %v): %d", method, target, auth%4, status)
		}
		if len(hits) > 1 {
			t.Fatalf("%s %q: %d services asked: %+v", method, target, len(hits), hits)
		}
		if len(hits) == 0 {
			return
		}
		hit := hits[0]
		if hit.method != method {
			t.Fatalf("%s %q: the service was asked %s", method, target, hit.method)
		}
		if !strings.HasPrefix(hit.uri, "/") {
			t.Fatalf("%s %q: the service got target %q, not in origin form", method, target, hit.uri)
		}
		route, err := domain.Resolve(method, hit.rawPath)
		if err != nil || route.Upstream != hit.upstream {
			t.Fatalf("%s %q reached %s as %q, which routes %+v (%v)", method, target, hit.upstream, hit.uri, route, err)
		}
		judged, err := url.PathUnescape(hit.rawPath)
		if err != nil || hit.path != judged {
			t.Fatalf("%s %q: the gateway judged %q, the %s service routes %q (%v)", method, target, judged, hit.upstream, hit.path, err)
		}
		if !route.Public && method != "OPTIONS" && !validToken {
			t.Fatalf("%s %q reached %s without a valid token", method, target, hit.upstream)
		}
		if hit.token != (token != "") {
			t.Fatalf("%s %q: Authorization forwarded %v, sent %v", method, target, hit.token, token != "")
		}
	})
}

// fzRoundTrip writes one raw request and returns the answer's status.
func fzRoundTrip(t *testing.T, addr, method, request string) int {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, request); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: method})
	if err != nil {
		t.Fatalf("no HTTP answer to %q: %v", request, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}
