package http_test

import (
	"encoding/base64"
	"encoding/json"
	"maps"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"limen/auth-service/internal/service"
	"limen/libs/contract"
)

// sentCookie is one Set-Cookie header: the value, and the attributes by lower-case name (flags such as
// HttpOnly map to "").
type sentCookie struct {
	value string
	attrs map[string]string
}

// sentCookies are the answer's Set-Cookie headers by cookie name; a cookie set twice fails the test.
func sentCookies(t *testing.T, r response) map[string]sentCookie {
	t.Helper()
	out := map[string]sentCookie{}
	for _, header := range r.header.Values("Set-Cookie") {
		parts := strings.Split(header, ";")
		name, value, _ := strings.Cut(strings.TrimSpace(parts[0]), "=")
		if _, twice := out[name]; twice {
			t.Fatalf("cookie %s set twice: %v", name, r.header.Values("Set-Cookie"))
		}
		sc := sentCookie{value: value, attrs: map[string]string{}}
		for _, attr := range parts[1:] {
			k, v, _ := strings.Cut(strings.TrimSpace(attr), "=")
			sc.attrs[strings.ToLower(k)] = v
		}
		out[name] = sc
	}
	return out
}

// expectCookie checks that name was set to value with exactly the attributes want. A "max-age" of
// "~N" accepts N-10 to N seconds (a lifetime counted from a moment before the answer).
func expectCookie(t *testing.T, cookies map[string]sentCookie, name, value string, want map[string]string) {
	t.Helper()
	got, ok := cookies[name]
	if !ok {
		t.Fatalf("cookie %s not set; set: %v", name, cookies)
	}
	if got.value != value {
		t.Fatalf("cookie %s = %q, want %q", name, got.value, value)
	}
	attrs := maps.Clone(got.attrs)
	if around, ok := strings.CutPrefix(want["max-age"], "~"); ok {
		n, _ := strconv.Atoi(around)
		if age, err := strconv.Atoi(attrs["max-age"]); err != nil || age < n-10 || age > n {
			t.Fatalf("cookie %s Max-Age %q, want about %d", name, attrs["max-age"], n)
		}
		want = maps.Clone(want)
		want["max-age"] = attrs["max-age"]
	}
	if !maps.Equal(attrs, want) {
		t.Fatalf("cookie %s attributes %v, want %v", name, attrs, want)
	}
}

// Attributes of the three cookies; refreshTTL is 24 h and the access token lives 1 h in newService.
func sessionAttrs(secure bool) (session, csrf, refresh map[string]string) {
	session = map[string]string{"max-age": "~3600", "path": "/", "httponly": "", "samesite": "Lax"}
	csrf = map[string]string{"max-age": "86400", "path": "/", "samesite": "Lax"}
	refresh = map[string]string{"max-age": "86400", "path": "/api/auth", "httponly": "", "samesite": "Lax"}
	if secure {
		for _, m := range []map[string]string{session, csrf, refresh} {
			m["secure"] = ""
		}
	}
	return session, csrf, refresh
}

func clearedAttrs(path string, httpOnly, secure bool) map[string]string {
	m := map[string]string{"max-age": "0", "path": path, "samesite": "Lax"}
	if httpOnly {
		m["httponly"] = ""
	}
	if secure {
		m["secure"] = ""
	}
	return m
}

// expectCSRF checks a CSRF cookie's value: 32 random bytes, base64url.
func expectCSRF(t *testing.T, value string) {
	t.Helper()
	if raw, err := base64.RawURLEncoding.DecodeString(value); err != nil || len(raw) != 32 {
		t.Fatalf("CSRF value %q is not 32 bytes of base64url", value)
	}
}

// tokenClaims is the payload of a JWT, unverified.
func tokenClaims(t *testing.T, token string) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", token)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(raw, &claims); err != nil {
		t.Fatal(err)
	}
	return claims
}

func TestSession_CreateGetAndDelete(t *testing.T) {
	c := newService(t, nil)
	login := c.login(adminName, adminPassword)
	login.expect(t, 200, "")
	token, refresh := login.body["token"].(string), login.body["refresh_token"].(string)

	r := c.do("POST", "/api/auth/session", token, `{"access_token":"`+token+`","refresh_token":"`+refresh+`"}`)
	r.expect(t, 200, "")
	user, _ := r.body["user"].(map[string]any)
	if r.body["valid"] != true || r.body["message"] != "Session created" || len(user) != 4 || user["id"] != login.body["user"].(map[string]any)["id"] ||
		user["username"] != adminName || user["role"] != "admin" || user["approved"] != true {
		t.Fatalf("session %s", r.raw)
	}
	cookies := sentCookies(t, r)
	session, csrf, refreshAttrs := sessionAttrs(false)
	expectCookie(t, cookies, contract.SessionCookie, token, session)
	expectCookie(t, cookies, contract.CSRFCookie, r.body["csrf_token"].(string), csrf)
	expectCSRF(t, cookies[contract.CSRFCookie].value)
	expectCookie(t, cookies, contract.RefreshCookie, refresh, refreshAttrs)

	// Without refresh_token no refresh cookie is set; the CSRF value is new.
	again := c.do("POST", "/api/auth/session", token, `{"access_token":"`+token+`"}`)
	again.expect(t, 200, "")
	if cookies := sentCookies(t, again); len(cookies) != 2 || cookies[contract.CSRFCookie].value == r.body["csrf_token"] {
		t.Fatalf("second session's cookies %v", again.header.Values("Set-Cookie"))
	}

	g := c.do("GET", "/api/auth/session", token, "")
	g.expect(t, 200, "")
	if want := map[string]any{"valid": true, "user": user}; !reflect.DeepEqual(g.body, want) {
		t.Fatalf("GET session %s, want %v", g.raw, want)
	}
	c.do("GET", "/api/auth/session", "", "").expect(t, 401, "Authentication required")
	c.do("GET", "/api/auth/session", "garbage", "").expect(t, 401, "Authentication required")
	c.do("GET", "/api/auth/session", refresh, "").expect(t, 401, "Authentication required")

	d := c.do("DELETE", "/api/auth/session", "", "",
		"Cookie", contract.RefreshCookie+"="+refresh+"; "+contract.SessionCookie+"="+token+"; "+contract.CSRFCookie+"=x")
	d.expect(t, 200, "")
	if d.body["message"] != "Logged out successfully" {
		t.Fatalf("delete %s", d.raw)
	}
	cleared := sentCookies(t, d)
	expectCookie(t, cleared, contract.SessionCookie, "", clearedAttrs("/", true, false))
	expectCookie(t, cleared, contract.CSRFCookie, "", clearedAttrs("/", false, false))
	expectCookie(t, cleared, contract.RefreshCookie, "", clearedAttrs("/api/auth", true, false))
	// The login is over: its refresh token is refused, and its access token everywhere.
	c.do("POST", "/api/auth/refresh", "", `{"refresh_token":"`+refresh+`"}`).expect(t, 401, "Invalid refresh token")
	t.Logf("session ended: access token refused after %s", c.waitRevoked(token))
	c.do("GET", "/api/auth/session", token, "").expect(t, 401, "Authentication required")

	// Nothing to end: the cookies are cleared all the same.
	if d := c.do("DELETE", "/api/auth/session", "", ""); d.status != 200 || len(sentCookies(t, d)) != 3 {
		t.Fatalf("delete without a session: %d %v", d.status, d.header.Values("Set-Cookie"))
	}
}

func TestSession_OnlyTheCallersOwnToken(t *testing.T) {
	c := newService(t, nil)
	login := c.login(adminName, adminPassword)
	admin, adminRefresh := login.body["token"].(string), login.body["refresh_token"].(string)
	_, ada := c.registerApproved("ada", "password1")

	for name, body := range map[string]string{
		"another user's token": `{"access_token":"` + ada + `"}`,
		"not a token":          `{"access_token":"garbage"}`,
		"a refresh token":      `{"access_token":"` + adminRefresh + `"}`,
	} {
		t.Run(name, func(t *testing.T) {
			r := c.do("POST", "/api/auth/session", admin, body)
			r.expect(t, 401, "Authentication required")
			if cookies := r.header.Values("Set-Cookie"); len(cookies) != 0 {
				t.Fatalf("refused, but set %v", cookies)
			}
		})
	}
	c.do("POST", "/api/auth/session", admin, `{}`).expect(t, 400, "Field 'access_token' is required")
	c.do("POST", "/api/auth/session", "", `{"access_token":"`+admin+`"}`).expect(t, 401, "Authentication required")
	c.do("POST", "/api/auth/session", ada, `{"access_token":"`+admin+`"}`).expect(t, 401, "Authentication required")
}

func TestSession_LoginSetsTheCookiesAndRefreshRenewsThem(t *testing.T) {
	c := newService(t, nil)
	r := c.login(adminName, adminPassword)
	r.expect(t, 200, "")
	token := r.body["token"].(string)
	cookies := sentCookies(t, r)
	session, csrf, refresh := sessionAttrs(false)
	expectCookie(t, cookies, contract.SessionCookie, token, session)
	expectCookie(t, cookies, contract.CSRFCookie, cookies[contract.CSRFCookie].value, csrf)
	expectCSRF(t, cookies[contract.CSRFCookie].value)
	expectCookie(t, cookies, contract.RefreshCookie, r.body["refresh_token"].(string), refresh)
	if claims := tokenClaims(t, token); claims["approved"] != true || claims["role"] != "admin" {
		t.Fatalf("access token claims %v", claims)
	}

	// A browser that has a CSRF cookie keeps it; the session cookie follows the new token.
	rr := c.do("POST", "/api/auth/refresh", "", "", "Cookie",
		contract.RefreshCookie+"="+r.body["refresh_token"].(string)+"; "+contract.CSRFCookie+"=kept")
	rr.expect(t, 200, "")
	renewed := sentCookies(t, rr)
	if _, set := renewed[contract.CSRFCookie]; set || len(renewed) != 2 {
		t.Fatalf("refresh with a CSRF cookie set %v", rr.header.Values("Set-Cookie"))
	}
	expectCookie(t, renewed, contract.SessionCookie, rr.body["token"].(string), session)
	expectCookie(t, renewed, contract.RefreshCookie, rr.body["refresh_token"].(string), refresh)

	// One without gets one.
	rr = c.do("POST", "/api/auth/refresh", "", `{"refresh_token":"`+rr.body["refresh_token"].(string)+`"}`)
	rr.expect(t, 200, "")
	renewed = sentCookies(t, rr)
	expectCookie(t, renewed, contract.CSRFCookie, renewed[contract.CSRFCookie].value, csrf)
	expectCSRF(t, renewed[contract.CSRFCookie].value)
	expectCookie(t, renewed, contract.SessionCookie, rr.body["token"].(string), session)
}

// The session cookies are Secure as the refresh cookie is: behind a trusted proxy that terminated
// TLS, or when configured.
func TestSession_CookiesSecureUnderTLS(t *testing.T) {
	tls := []string{"X-Forwarded-Proto", "https"}
	session, csrf, refresh := sessionAttrs(true)
	plain := newService(t, trustTestPeer)
	r := plain.do("POST", "/api/auth/login", "", creds(adminName, adminPassword), tls...)
	r.expect(t, 200, "")
	token := r.body["token"].(string)
	cookies := sentCookies(t, r)
	expectCookie(t, cookies, contract.SessionCookie, token, session)
	expectCookie(t, cookies, contract.CSRFCookie, cookies[contract.CSRFCookie].value, csrf)
	expectCookie(t, cookies, contract.RefreshCookie, r.body["refresh_token"].(string), refresh)

	s := plain.do("POST", "/api/auth/session", token, `{"access_token":"`+token+`"}`, tls...)
	s.expect(t, 200, "")
	cookies = sentCookies(t, s)
	expectCookie(t, cookies, contract.SessionCookie, token, session)
	expectCookie(t, cookies, contract.CSRFCookie, s.body["csrf_token"].(string), csrf)

	d := plain.do("DELETE", "/api/auth/session", "", "", tls...)
	d.expect(t, 200, "")
	cookies = sentCookies(t, d)
	expectCookie(t, cookies, contract.SessionCookie, "", clearedAttrs("/", true, true))
	expectCookie(t, cookies, contract.CSRFCookie, "", clearedAttrs("/", false, true))
	expectCookie(t, cookies, contract.RefreshCookie, "", clearedAttrs("/api/auth", true, true))

	// Plain HTTP: none is Secure.
	session, csrf, refresh = sessionAttrs(false)
	r = plain.login(adminName, adminPassword)
	cookies = sentCookies(t, r)
	expectCookie(t, cookies, contract.SessionCookie, r.body["token"].(string), session)
	expectCookie(t, cookies, contract.CSRFCookie, cookies[contract.CSRFCookie].value, csrf)
	expectCookie(t, cookies, contract.RefreshCookie, r.body["refresh_token"].(string), refresh)

	configured := newService(t, func(cfg *service.Config) { cfg.CookieSecure = true })
	session, csrf, refresh = sessionAttrs(true)
	r = configured.login(adminName, adminPassword)
	cookies = sentCookies(t, r)
	expectCookie(t, cookies, contract.SessionCookie, r.body["token"].(string), session)
	expectCookie(t, cookies, contract.CSRFCookie, cookies[contract.CSRFCookie].value, csrf)
	expectCookie(t, cookies, contract.RefreshCookie, r.body["refresh_token"].(string), refresh)
}
