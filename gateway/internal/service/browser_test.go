package service

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/golang-jwt/jwt/v5"

	"limen/libs/authn"
	"limen/libs/config"
	"limen/libs/contract"
	"limen/libs/testkit/jwttest"
)

// The gateway as a browser page of another origin uses it: the public LIMEN frontend, with
// `credentials: 'include'`, in front of services that add CORS headers and request ids of their own.

const (
	page    = "http://localhost:3000"
	foreign = "https://evil.example"
	// userID owns vmOfUser; adminID owns nothing; vmOfOther is someone else's.
	userID, otherID, adminID = int64(7), int64(8), int64(1)
	vmOfUser                 = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"
	vmOfOther                = "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb"
)

// upstream stands in for a service behind the gateway. It answers what it was asked, as the gateway
// forwarded it, with CORS headers and a request id of its own, spelled in more than one way, which
// must never reach the browser; vm-service's stand-in also lists VMs as vm-service does.
type upstream struct {
	url string
	// asked counts the requests that reached it (readiness probes aside).
	asked atomic.Int64
}

type forwarded struct {
	Method        string `json:"method"`
	URI           string `json:"uri"`
	Authorization string `json:"authorization"`
	Cookie        string `json:"cookie"`
}

func startUpstream(t *testing.T, verifier *authn.Verifier) *upstream {
	t.Helper()
	u := &upstream{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/readyz" {
			_, _ = w.Write([]byte(`{"status":"ok","checks":{"db":"connected"}}`))
			return
		}
		u.asked.Add(1)
		h := w.Header()
		h["access-control-allow-origin"] = []string{"*"} // written as it is here: not Go's spelling
		h.Set("Access-Control-Allow-Origin", "https://upstream.example")
		h.Set("Access-Control-Allow-Credentials", "false")
		h.Set("Access-Control-Allow-Methods", "TRACE")
		h.Set("Access-Control-Expose-Headers", "X-Upstream")
		h.Set("X-Request-Id", "upstream-request-id")
		h["x-request-id"] = []string{"another-upstream-request-id"}
		h.Set("Vary", "Accept-Encoding")
		if r.Method == http.MethodGet && r.URL.Path == "/api/vms" {
			listVMs(w, r, verifier)
			return
		}
		_ = json.NewEncoder(w).Encode(forwarded{Method: r.Method, URI: r.RequestURI,
			Authorization: r.Header.Get("Authorization"), Cookie: r.Header.Get("Cookie")})
	}))
	t.Cleanup(srv.Close)
	u.url = srv.URL
	return u
}

// listVMs answers GET /api/vms as vm-service does: the caller's VMs, everyone's for an admin asking
// ?all=true.
func listVMs(w http.ResponseWriter, r *http.Request, verifier *authn.Verifier) {
	claims, err := verifier.Verify(authn.BearerToken(r.Header.Get("Authorization")))
	if err != nil {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"code":401,"message":"Authentication required"}`))
		return
	}
	all := claims.IsAdmin() && r.URL.Query().Get("all") == "true"
	vms := []map[string]any{}
	for _, vm := range []map[string]any{{"id": 1, "uuid": vmOfUser, "owner_id": userID}, {"id": 2, "uuid": vmOfOther, "owner_id": otherID}} {
		if all || vm["owner_id"] == claims.UserID {
			vms = append(vms, vm)
		}
	}
	_ = json.NewEncoder(w).Encode(vms)
}

type browserGateway struct {
	addr                  string
	issuer                *jwttest.KeyIssuer
	auth, vms, media      *upstream
	userToken, adminToken string
}

// startBrowserGateway is the gateway as main builds it, with LIMEN_CORS_ORIGINS naming page.
func startBrowserGateway(t *testing.T) *browserGateway {
	t.Helper()
	issuer := jwttest.New(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	verifier, err := authn.NewVerifier(ctx, authn.VerifierConfig{JWKSURL: issuer.JWKSURL, Issuer: jwttest.Issuer, Audience: jwttest.Audience})
	if err != nil {
		t.Fatal(err)
	}
	g := &browserGateway{issuer: issuer, auth: startUpstream(t, verifier), vms: startUpstream(t, verifier), media: startUpstream(t, verifier),
		userToken: issuer.Token(t, userID, authn.RoleUser), adminToken: issuer.Token(t, adminID, authn.RoleAdmin)}
	for k, v := range map[string]string{"LIMEN_JWKS_URL": issuer.JWKSURL, "KAFKA_BROKERS": "", "LIMEN_METRICS_ADDR": "off",
		"AUTH_SERVICE_URL": g.auth.url, "VM_SERVICE_URL": g.vms.url, "MEDIA_SERVICE_URL": g.media.url,
		"LIMEN_CORS_ORIGINS": page + ",https://*.limen.example"} {
		t.Setenv(k, v)
	}
	cfg, err := config.Load[Config]()
	if err != nil {
		t.Fatal(err)
	}
	svc, err := New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = svc.App().Listener(ln) }()
	t.Cleanup(func() { _ = svc.App().Shutdown() })
	g.addr = ln.Addr().String()
	return g
}

// rawAnswer is an answer as it came over the wire: every header line as sent, never merged.
type rawAnswer struct {
	status int
	lines  [][2]string
	body   string
}

// send writes one request on a connection of its own and reads the answer; headers are name, value
// pairs.
func (g *browserGateway) send(t *testing.T, method, target, body string, headers ...string) rawAnswer {
	t.Helper()
	conn, err := net.DialTimeout("tcp", g.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	var req strings.Builder
	fmt.Fprintf(&req, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n", method, target, g.addr)
	for i := 0; i+1 < len(headers); i += 2 {
		fmt.Fprintf(&req, "%s: %s\r\n", headers[i], headers[i+1])
	}
	if body != "" {
		fmt.Fprintf(&req, "Content-Type: application/json\r\nContent-Length: %d\r\n", len(body))
	}
	req.WriteString("\r\n" + body)
	if _, err := io.WriteString(conn, req.String()); err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(conn)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(raw)), nil)
	if err != nil {
		t.Fatalf("%v: %q", err, raw)
	}
	defer resp.Body.Close()
	answerBody, _ := io.ReadAll(resp.Body)
	head, _, _ := strings.Cut(string(raw), "\r\n\r\n")
	a := rawAnswer{status: resp.StatusCode, body: string(answerBody)}
	for _, line := range strings.Split(head, "\r\n")[1:] {
		name, value, _ := strings.Cut(line, ":")
		a.lines = append(a.lines, [2]string{name, strings.TrimSpace(value)})
	}
	return a
}

// values are the values of every line named name, in any letter case.
func (a rawAnswer) values(name string) []string {
	var out []string
	for _, l := range a.lines {
		if strings.EqualFold(l[0], name) {
			out = append(out, l[1])
		}
	}
	return out
}

// one is the value of the one line named name, failing t when there is none or more.
func (a rawAnswer) one(t *testing.T, name string) string {
	t.Helper()
	v := a.values(name)
	if len(v) != 1 {
		t.Fatalf("%s: %d lines %q in\n%s", name, len(v), v, a)
	}
	return v[0]
}

// eachOnce fails t when a header appears on more than one line (Set-Cookie, one line per cookie by
// its definition, aside).
func (a rawAnswer) eachOnce(t *testing.T) {
	t.Helper()
	seen := map[string]bool{}
	for _, l := range a.lines {
		name := strings.ToLower(l[0])
		if seen[name] && name != "set-cookie" {
			t.Fatalf("%s twice in\n%s", l[0], a)
		}
		seen[name] = true
	}
}

// noCORS fails t when the answer carries any CORS header.
func (a rawAnswer) noCORS(t *testing.T) {
	t.Helper()
	for _, l := range a.lines {
		if strings.HasPrefix(strings.ToLower(l[0]), "access-control-") {
			t.Fatalf("%s in an answer to a foreign origin\n%s", l[0], a)
		}
	}
}

// listed fails t unless the comma-separated header holds each of want, in any letter case.
func listed(t *testing.T, header string, want ...string) {
	t.Helper()
	var items []string
	for item := range strings.SplitSeq(header, ",") {
		items = append(items, strings.ToLower(strings.TrimSpace(item)))
	}
	for _, w := range want {
		if !slices.Contains(items, strings.ToLower(w)) {
			t.Fatalf("%q does not list %s", header, w)
		}
	}
}

func (a rawAnswer) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d\n", a.status)
	for _, l := range a.lines {
		fmt.Fprintf(&b, "%s: %s\n", l[0], l[1])
	}
	return b.String() + a.body
}

func (a rawAnswer) forwarded(t *testing.T) forwarded {
	t.Helper()
	var f forwarded
	if err := json.Unmarshal([]byte(a.body), &f); err != nil || f.Method == "" {
		t.Fatalf("not forwarded: %s", a)
	}
	return f
}

// The headers the frontend sends on its calls, which its preflights name.
var frontendHeaders = []string{"Authorization", "Content-Type", "X-Request-ID", "X-CSRF-Token", "Cache-Control", "Pragma"}

func TestBrowser_CORSOnEveryAnswer_EachHeaderOnce(t *testing.T) {
	g := startBrowserGateway(t)
	routes := []struct {
		name, method, path, body string
		by                       *upstream // nil: the gateway answers itself
		token                    string
		status                   int
	}{
		{"auth-service", "GET", "/api/auth/me", "", g.auth, g.userToken, 200},
		{"vm-service", "POST", "/api/vms/" + vmOfUser + "/action", `{"action":"start"}`, g.vms, g.userToken, 200},
		{"media-service", "GET", "/api/vms/isos", "", g.media, g.userToken, 200},
		{"media-service upload", "POST", "/api/vms/isos?name=a.iso", "not really an ISO", g.media, g.adminToken, 200},
		{"the gateway's health", "GET", "/api/health", "", nil, "", 200},
		{"the gateway's 401", "GET", "/api/vms", "", nil, "", 401},
		{"the gateway's 404", "GET", "/api/nothing", "", nil, g.userToken, 404},
	}
	for i, r := range routes {
		t.Run(r.name, func(t *testing.T) {
			asked := func() int64 {
				if r.by == nil {
					return 0
				}
				return r.by.asked.Load()
			}
			before := asked()

			preflight := g.send(t, "OPTIONS", r.path, "", "Origin", page, "Access-Control-Request-Method", r.method,
				"Access-Control-Request-Headers", strings.ToLower(strings.Join(frontendHeaders, ",")))
			preflight.eachOnce(t)
			if preflight.status != http.StatusNoContent || preflight.one(t, "Access-Control-Allow-Origin") != page ||
				preflight.one(t, "Access-Control-Allow-Credentials") != "true" {
				t.Fatalf("preflight\n%s", preflight)
			}
			listed(t, preflight.one(t, "Access-Control-Allow-Methods"), r.method)
			listed(t, preflight.one(t, "Access-Control-Allow-Headers"), frontendHeaders...)
			listed(t, preflight.one(t, "Vary"), "Origin")

			refused := g.send(t, "OPTIONS", r.path, "", "Origin", foreign, "Access-Control-Request-Method", r.method,
				"Access-Control-Request-Headers", "authorization")
			refused.eachOnce(t)
			refused.noCORS(t)
			if asked() != before {
				t.Fatal("a preflight reached the service")
			}

			headers := []string{"Origin", page, "X-Request-ID", fmt.Sprintf("req-%d", i)}
			if r.token != "" {
				headers = append(headers, "Authorization", "Bearer "+r.token)
			}
			allowed := g.send(t, r.method, r.path, r.body, headers...)
			allowed.eachOnce(t)
			if allowed.status != r.status || allowed.one(t, "Access-Control-Allow-Origin") != page ||
				allowed.one(t, "Access-Control-Allow-Credentials") != "true" || allowed.one(t, "X-Request-ID") != headers[3] {
				t.Fatalf("from the page\n%s", allowed)
			}
			listed(t, allowed.one(t, "Access-Control-Expose-Headers"), "X-Request-ID", "Retry-After", "X-Total-Count")
			listed(t, allowed.one(t, "Vary"), "Origin")
			if r.by != nil {
				listed(t, allowed.one(t, "Vary"), "Accept-Encoding") // the service's own, kept
				if asked() != before+1 {
					t.Fatalf("the service was asked %d times", asked()-before)
				}
			}

			headers[1] = foreign
			other := g.send(t, r.method, r.path, r.body, headers...)
			other.eachOnce(t)
			other.noCORS(t)
			if other.status != r.status || other.one(t, "X-Request-ID") != headers[3] {
				t.Fatalf("from another site\n%s", other)
			}
		})
	}

	// A wildcard entry lets its subdomains in; the origin is echoed as the browser sent it.
	sub := g.send(t, "GET", "/api/health", "", "Origin", "https://console.limen.example")
	if sub.one(t, "Access-Control-Allow-Origin") != "https://console.limen.example" {
		t.Fatalf("subdomain\n%s", sub)
	}
	for _, o := range []string{"https://limen.example", "null", "http://localhost:3001", "http://localhost:3000/app"} {
		g.send(t, "GET", "/api/health", "", "Origin", o).noCORS(t)
	}
}

func TestBrowser_SessionCookie_CSRFGuardsStateChangesOnly(t *testing.T) {
	g := startBrowserGateway(t)
	session := contract.SessionCookie + "=" + g.userToken
	bootOrder := "/api/vms/" + vmOfUser + "/boot-order"
	csrfRefused := `{"code":403,"message":"Invalid or missing CSRF token"}`

	// A read by cookie is the user's: the service gets the token as a bearer token.
	r := g.send(t, "GET", "/api/auth/session", "", "Origin", page, "Cookie", session)
	if f := r.forwarded(t); r.status != 200 || f.Authorization != "Bearer "+g.userToken || f.Method != "GET" {
		t.Fatalf("session check\n%s", r)
	}
	r = g.send(t, "GET", "/api/vms/"+vmOfUser+"/boot-order", "", "Cookie", session)
	if f := r.forwarded(t); f.Authorization != "Bearer "+g.userToken {
		t.Fatalf("boot order read\n%s", r)
	}

	// A change by cookie needs the CSRF cookie echoed in the header.
	for name, headers := range map[string][]string{
		"no CSRF header":          {"Cookie", session + "; " + contract.CSRFCookie + "=c5rf"},
		"no CSRF cookie":          {"Cookie", session, contract.CSRFHeader, "c5rf"},
		"a wrong CSRF header":     {"Cookie", session + "; " + contract.CSRFCookie + "=c5rf", contract.CSRFHeader, "c5rg"},
		"a CSRF header too long":  {"Cookie", session + "; " + contract.CSRFCookie + "=c5rf", contract.CSRFHeader, "c5rf0"},
		"both empty":              {"Cookie", session + "; " + contract.CSRFCookie + "=", contract.CSRFHeader, ""},
		"the header, as a cookie": {"Cookie", session + "; " + contract.CSRFHeader + "=c5rf"},
	} {
		before := g.vms.asked.Load()
		r := g.send(t, "POST", bootOrder, `{"boot_order":"hd"}`, append([]string{"Origin", page}, headers...)...)
		r.eachOnce(t)
		if r.status != 403 || r.body != csrfRefused || r.one(t, "Access-Control-Allow-Origin") != page {
			t.Fatalf("%s\n%s", name, r)
		}
		if g.vms.asked.Load() != before {
			t.Fatalf("%s: forwarded", name)
		}
	}
	for _, method := range []string{"PUT", "PATCH", "DELETE"} {
		if r := g.send(t, method, "/api/vms/"+vmOfUser, `{}`, "Cookie", session); r.status != 403 || r.body != csrfRefused {
			t.Fatalf("%s without CSRF\n%s", method, r)
		}
	}
	r = g.send(t, "POST", bootOrder, `{"boot_order":"hd"}`, "Origin", page,
		"Cookie", session+"; "+contract.CSRFCookie+"=c5rf", contract.CSRFHeader, "c5rf")
	if f := r.forwarded(t); r.status != 200 || f.Method != "POST" || f.URI != bootOrder || f.Authorization != "Bearer "+g.userToken {
		t.Fatalf("with the CSRF token\n%s", r)
	}
	r = g.send(t, "POST", "/api/vms/"+vmOfUser+"/finalize-install", "", "Cookie", session+"; "+contract.CSRFCookie+"=c5rf",
		contract.CSRFHeader, "c5rf")
	if f := r.forwarded(t); f.Authorization != "Bearer "+g.userToken {
		t.Fatalf("finalize-install\n%s", r)
	}

	// A bearer token is never sent by the browser on its own: no CSRF token needed, cookies or not.
	r = g.send(t, "POST", bootOrder, `{"boot_order":"cdrom"}`, "Authorization", "Bearer "+g.userToken)
	if f := r.forwarded(t); r.status != 200 || f.Authorization != "Bearer "+g.userToken {
		t.Fatalf("bearer without CSRF\n%s", r)
	}
	r = g.send(t, "POST", "/api/auth/session", `{"access_token":"`+g.userToken+`"}`, "Authorization", "Bearer "+g.userToken)
	if f := r.forwarded(t); r.status != 200 || f.Authorization != "Bearer "+g.userToken {
		t.Fatalf("session from tokens\n%s", r)
	}
	// With an Authorization header, the header alone decides.
	if r := g.send(t, "GET", "/api/auth/session", "", "Authorization", "Bearer nonsense", "Cookie", session); r.status != 401 {
		t.Fatalf("a bad bearer beside a good cookie\n%s", r)
	}

	expired := jwttest.Claims(userID, authn.RoleUser)
	expired.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-time.Minute))
	stale := contract.SessionCookie + "=" + g.issuer.Sign(t, expired) + "; " + contract.RefreshCookie + "=r"
	for _, req := range []struct{ method, path string }{{"GET", "/api/auth/session"}, {"POST", "/api/auth/session"}, {"GET", "/api/vms"}} {
		r := g.send(t, req.method, req.path, "", "Origin", page, "Cookie", stale)
		if r.status != 401 || r.body != `{"code":401,"message":"Authentication required"}` || r.one(t, "Access-Control-Allow-Origin") != page {
			t.Fatalf("%s %s with an expired session\n%s", req.method, req.path, r)
		}
	}
	// Logging out works with an expired session: auth-service ends it by the refresh cookie.
	r = g.send(t, "DELETE", "/api/auth/session", "", "Origin", page, "Cookie", stale)
	if f := r.forwarded(t); r.status != 200 || f.Method != "DELETE" || f.Cookie != stale || f.Authorization != "" ||
		r.one(t, "Access-Control-Allow-Origin") != page {
		t.Fatalf("log out\n%s", r)
	}
}

func TestBrowser_SocketBySessionCookie_AdminSeesEveryonesOnlyAskingForAll(t *testing.T) {
	g := startBrowserGateway(t)
	dial := func(token, query, origin string) (*websocket.Conn, *http.Response, error) {
		header := http.Header{"Cookie": {contract.SessionCookie + "=" + token}, "Origin": {origin}}
		conn, resp, err := websocket.DefaultDialer.Dial("ws://"+g.addr+"/ws/vm-status"+query, header)
		if conn != nil {
			t.Cleanup(func() { _ = conn.Close() })
		}
		return conn, resp, err
	}
	firstList := func(token, query string) []string {
		t.Helper()
		conn, _, err := dial(token, query, page)
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		var m struct {
			Type string `json:"type"`
			VMs  []struct {
				UUID string `json:"uuid"`
			} `json:"vms"`
		}
		if err := conn.ReadJSON(&m); err != nil || m.Type != "vm_list" {
			t.Fatalf("%+v %v", m, err)
		}
		var uuids []string
		for _, vm := range m.VMs {
			uuids = append(uuids, vm.UUID)
		}
		return uuids
	}
	for name, c := range map[string]struct {
		token, query string
		want         []string
	}{
		"user":                  {g.userToken, "", []string{vmOfUser}},
		"user asking for all":   {g.userToken, "?all=true", []string{vmOfUser}},
		"admin":                 {g.adminToken, "", nil},
		"admin asking for all":  {g.adminToken, "?all=true", []string{vmOfUser, vmOfOther}},
		"admin asking for none": {g.adminToken, "?all=false", nil},
	} {
		if got := firstList(c.token, c.query); !slices.Equal(got, c.want) {
			t.Errorf("%s: %v, want %v", name, got, c.want)
		}
	}

	// The Origin check stays: another site's page cannot use the browser's cookie.
	if _, resp, err := dial(g.userToken, "", foreign); err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("foreign origin: %v %+v", err, resp)
	}
	if _, resp, err := dial("not-a-token", "", page); err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("bad cookie: %v %+v", err, resp)
	}
}
