package local

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
)

// browserOrigin is the frontend's origin the stack allows (LIMEN_CORS_ORIGINS in TestMakeRun).
const browserOrigin = "http://localhost:3000"

// browser is a client that behaves as the frontend's does in a browser: it sends its Origin, keeps
// cookies (credentials: 'include') and echoes the CSRF cookie on state-changing calls when told to.
type browser struct {
	t      *testing.T
	base   string
	origin string
	client *http.Client
}

func newBrowser(t *testing.T, base, origin string) *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &browser{t: t, base: base, origin: origin, client: &http.Client{Jar: jar}}
}

// cookie is the value of the cookie the browser would send to path (the refresh cookie is scoped to
// /api/auth).
func (b *browser) cookie(name string) string {
	path := "/"
	if name == "refresh_token" {
		path = "/api/auth/refresh"
	}
	u, _ := url.Parse(b.base + path)
	for _, c := range b.client.Jar.Cookies(u) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

// do sends a request; csrf is the X-CSRF-Token to send ("" for none).
func (b *browser) do(method, path, bearer, csrf, body string) *http.Response {
	b.t.Helper()
	req, err := http.NewRequest(method, b.base+path, strings.NewReader(body))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Origin", b.origin)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	if csrf != "" {
		req.Header.Set("X-CSRF-Token", csrf)
	}
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, path, err)
	}
	resp.Body.Close()
	return resp
}

func (b *browser) preflight(path, method string) *http.Response {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodOptions, b.base+path, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Origin", b.origin)
	req.Header.Set("Access-Control-Request-Method", method)
	req.Header.Set("Access-Control-Request-Headers", "authorization,content-type,x-csrf-token,cache-control,pragma,x-request-id")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// onceEach fails unless every header of resp appears at most once (Go keeps repeated lines as
// several values of one key).
func onceEach(t *testing.T, what string, resp *http.Response) {
	t.Helper()
	for name, values := range resp.Header {
		if len(values) > 1 && name != "Set-Cookie" && name != "Vary" {
			t.Errorf("%s: header %s appears %d times: %q", what, name, len(values), values)
		}
	}
}

// checkBrowserSession walks what the frontend does in a browser through the real stack: CORS on a
// route of every service for its origin and none for a foreign one, then a cookie session: login sets
// the cookies, the session cookie alone authenticates reads, a state-changing call needs the CSRF
// token, a bearer call does not, and logging out clears the cookies and ends the login.
func checkBrowserSession(t *testing.T, base, adminPassword string) {
	routes := []string{"/api/auth/me", "/api/vms", "/api/vms/isos"}
	c := apiClient{t: t, base: base}
	adminToken := c.expect(c.call("POST", "/api/auth/login", "", credentials{"admin", adminPassword}), 200, "").body["token"].(string)

	allowed, foreign := newBrowser(t, base, browserOrigin), newBrowser(t, base, "http://evil.example")
	for _, route := range routes {
		pre := allowed.preflight(route, "POST")
		if pre.StatusCode >= 300 || pre.Header.Get("Access-Control-Allow-Origin") != browserOrigin ||
			pre.Header.Get("Access-Control-Allow-Credentials") != "true" {
			t.Errorf("preflight %s from the frontend: %d %v", route, pre.StatusCode, pre.Header)
		}
		for _, h := range []string{"x-csrf-token", "cache-control", "pragma", "authorization", "content-type", "x-request-id"} {
			if !strings.Contains(strings.ToLower(pre.Header.Get("Access-Control-Allow-Headers")), h) {
				t.Errorf("preflight %s: %s not allowed (%q)", route, h, pre.Header.Get("Access-Control-Allow-Headers"))
			}
		}
		onceEach(t, "preflight "+route, pre)
		got := allowed.do("GET", route, adminToken, "", "")
		if got.StatusCode != 200 || got.Header.Get("Access-Control-Allow-Origin") != browserOrigin ||
			got.Header.Get("Access-Control-Allow-Credentials") != "true" ||
			!strings.Contains(strings.ToLower(got.Header.Get("Access-Control-Expose-Headers")), "x-total-count") {
			t.Errorf("GET %s from the frontend: %d %v", route, got.StatusCode, got.Header)
		}
		onceEach(t, "GET "+route, got)
		if pre := foreign.preflight(route, "POST"); pre.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("preflight %s from a foreign origin allowed: %v", route, pre.Header)
		}
		if got := foreign.do("GET", route, adminToken, "", ""); got.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("GET %s from a foreign origin carries CORS headers: %v", route, got.Header)
		}
	}

	// A cookie session.
	b := newBrowser(t, base, browserOrigin)
	login := b.do("POST", "/api/auth/login", "", "", fmt.Sprintf(`{"username":"admin","password":%q}`, adminPassword))
	if login.StatusCode != 200 || b.cookie("limen_session") == "" || b.cookie("limen_csrf") == "" || b.cookie("refresh_token") == "" {
		t.Fatalf("login: %d, cookies %v", login.StatusCode, login.Header.Values("Set-Cookie"))
	}
	for _, set := range login.Header.Values("Set-Cookie") {
		if strings.HasPrefix(set, "limen_session=") && (!strings.Contains(set, "HttpOnly") || !strings.Contains(set, "SameSite=Lax")) {
			t.Errorf("session cookie: %s", set)
		}
		if strings.HasPrefix(set, "limen_csrf=") && strings.Contains(set, "HttpOnly") {
			t.Errorf("the page must read the CSRF cookie: %s", set)
		}
	}
	if r := b.do("GET", "/api/auth/session", "", "", ""); r.StatusCode != 200 {
		t.Errorf("GET /api/auth/session with the cookie: %d", r.StatusCode)
	}
	for _, route := range routes {
		if r := b.do("GET", route, "", "", ""); r.StatusCode != 200 {
			t.Errorf("GET %s with the session cookie: %d", route, r.StatusCode)
		}
	}
	vm := `{"name":"browser-vm","cpu":1,"memory":128,"os_type":"ubuntu-server"}`
	if r := b.do("POST", "/api/vms", "", "", vm); r.StatusCode != 403 {
		t.Errorf("cookie POST without CSRF: %d, want 403", r.StatusCode)
	}
	if r := b.do("POST", "/api/vms", "", "not-the-token", vm); r.StatusCode != 403 {
		t.Errorf("cookie POST with a wrong CSRF token: %d, want 403", r.StatusCode)
	}
	created := b.do("POST", "/api/vms", "", b.cookie("limen_csrf"), vm)
	if created.StatusCode != 201 {
		t.Errorf("cookie POST with the CSRF token: %d, want 201", created.StatusCode)
	}
	bearerOnly := newBrowser(t, base, browserOrigin)
	if r := bearerOnly.do("POST", "/api/vms", adminToken, "", `{"name":"bearer-vm","cpu":1,"memory":128,"os_type":"ubuntu-server"}`); r.StatusCode != 201 {
		t.Errorf("bearer POST without CSRF: %d, want 201", r.StatusCode)
	}
	for _, name := range []string{"browser-vm", "bearer-vm"} {
		deleteVMNamed(t, c, adminToken, name)
	}

	refresh := b.cookie("refresh_token")
	if r := b.do("DELETE", "/api/auth/session", "", b.cookie("limen_csrf"), ""); r.StatusCode != 200 {
		t.Errorf("DELETE /api/auth/session: %d", r.StatusCode)
	}
	if b.cookie("limen_session") != "" || b.cookie("refresh_token") != "" {
		t.Errorf("cookies left after logging out")
	}
	if r := b.do("GET", "/api/auth/session", "", "", ""); r.StatusCode != 401 {
		t.Errorf("GET /api/auth/session after logging out: %d, want 401", r.StatusCode)
	}
	c.expect(c.call("POST", "/api/auth/refresh", "", map[string]string{"refresh_token": refresh}), 401, "")
}

// deleteVMNamed deletes the admin's VM of that name.
func deleteVMNamed(t *testing.T, c apiClient, token, name string) {
	t.Helper()
	list := c.call("GET", "/api/vms", token, nil)
	var vms []map[string]any
	if err := json.Unmarshal([]byte(list.raw), &vms); err != nil {
		t.Fatalf("VM list: %v", err)
	}
	for _, vm := range vms {
		if vm["name"] == name {
			c.expect(c.call("DELETE", "/api/vms/"+fmt.Sprint(vm["uuid"]), token, nil), 200, "")
		}
	}
}
