package http_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5/pgxpool"

	"limen/auth-service/internal/adapters/argon2"
	"limen/auth-service/internal/service"
	"limen/libs/contract"
	"limen/libs/testkit/pgtest"
)

// The fuzz targets below drive the real app (service.New over the package's Postgres, as newService
// builds it) with fuzzed bodies and path parameters. Their common rule: no input is answered 5xx
// or panics, and an input that is refused changes nothing in the database. "Nothing" is the
// service's tables (users, refresh_tokens, the outbox's events; the relay's published_at is
// bookkeeping of its own) and login_throttle too when the refusal is the decoder's or the
// validator's (400, 415). A refusal after that point (401, 403, 409, 429) may have counted the
// attempt in login_throttle: that count is what the login and registration limits are made of
// (app.LoginPolicy, app.RegisterPolicy), so it is the one change such a refusal must make.

// fzAuth is auth-service over a fresh database of the package's cluster.
type fzAuth struct {
	app  *fiber.App
	pool *pgxpool.Pool
}

// fzAuthService is newService for a fuzz target (newService takes a *testing.T). Limits are far
// away, so that fuzzing keeps reaching the password check instead of 429; tokens last a day, so a
// long `make fuzz` keeps its admin.
func fzAuthService(f *testing.F, tweak func(*service.Config)) fzAuth {
	f.Helper()
	const far = 1 << 30
	cfg := service.Config{
		DatabaseURL: pgtest.NewDatabase(f), DataDir: f.TempDir(), Settings: contract.Settings{Issuer: "limen", Audience: "limen-api"},
		AccessTTL: 24 * time.Hour, RefreshTTL: 24 * time.Hour, AdminUsername: adminName, AdminPassword: adminPassword,
		MaxFailures: far, MaxFailuresPerIP: far, MaxFailuresPerAccount: far, RegisterMaxPerIP: far,
		// Windows longer than any run: the prune loop then never deletes a counter under a comparison.
		LoginLockout: 24 * time.Hour, RegisterWindow: 24 * time.Hour,
		PasswordHashParams: argon2.Params{Memory: 1024, Iterations: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32},
	}
	if tweak != nil {
		tweak(&cfg)
	}
	svc, pool := startService(f, &cfg)
	return fzAuth{app: svc.App(), pool: pool}
}

type fzAnswer struct {
	status int
	body   map[string]any
	raw    string
}

// do sends one request; target is the raw request target, written on the request line as given.
func (s fzAuth) do(t testing.TB, method, target, token, contentType, body string, headers ...string) fzAnswer {
	t.Helper()
	req := httptest.NewRequest(method, "/", strings.NewReader(body))
	req.RequestURI = target
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := s.app.Test(req, 10_000)
	if err != nil {
		t.Fatalf("%s %q: %v", method, target, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := fzAnswer{status: resp.StatusCode, raw: string(raw)}
	_ = json.Unmarshal(raw, &a.body)
	return a
}

// fzAuthState is a digest of the service's tables: core (users, refresh tokens, outbox events) and
// the login counters apart.
type fzAuthState struct {
	core, accounts, throttle string
	users, tokens            int
}

func (s fzAuth) state(t testing.TB) fzAuthState {
	t.Helper()
	var st fzAuthState
	err := s.pool.QueryRow(context.Background(), `SELECT
		concat_ws('/',
			(SELECT md5(coalesce(string_agg(u::text, '|' ORDER BY u.id), '')) FROM users u),
			(SELECT md5(coalesce(string_agg(r::text, '|' ORDER BY r.token_hash), '')) FROM refresh_tokens r),
			(SELECT md5(coalesce(string_agg(concat_ws(',', o.id, o.topic, o.key, encode(o.payload, 'hex'), o.traceparent, o.created_at), '|' ORDER BY o.id), '')) FROM outbox o)),
		(SELECT md5(coalesce(string_agg(u::text, '|' ORDER BY u.id), '')) FROM users u),
		(SELECT md5(coalesce(string_agg(l::text, '|' ORDER BY l.key), '')) FROM login_throttle l),
		(SELECT count(*) FROM users), (SELECT count(*) FROM refresh_tokens)`).Scan(&st.core, &st.accounts, &st.throttle, &st.users, &st.tokens)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// checkRefused applies the common rule to a refusal (any 4xx): what may have changed.
func checkRefused(t *testing.T, what string, a fzAnswer, before, after fzAuthState) {
	t.Helper()
	if a.status >= 500 {
		t.Fatalf("%s: %d %s", what, a.status, a.raw)
	}
	if a.body["code"] != float64(a.status) || a.body["message"] == "" {
		t.Fatalf("%s: %d without the error body {code, message}: %s", what, a.status, a.raw)
	}
	if after.core != before.core {
		t.Fatalf("%s: refused with %d %s, but the database changed", what, a.status, a.raw)
	}
	if (a.status == 400 || a.status == 415) && after.throttle != before.throttle {
		t.Fatalf("%s: refused by decoding/validation (%d %s), but login_throttle changed", what, a.status, a.raw)
	}
}

// fzCredentialsBody renders the credentials body a fuzz input stands for: mode 0 is well-formed
// JSON of the two strings; mode 1 splices them in raw (other JSON types, broken JSON); mode 2 sends
// username as the whole body with password as its Content-Type.
func fzCredentialsBody(mode uint8, username, password string) (body, contentType string, ok bool) {
	switch mode % 3 {
	case 0:
		b, _ := json.Marshal(map[string]string{"username": username, "password": password})
		return string(b), fiber.MIMEApplicationJSON, true
	case 1:
		return `{"username":` + username + `,"password":` + password + `}`, fiber.MIMEApplicationJSON, true
	}
	if !fzHeaderValue(password) {
		return "", "", false
	}
	return username, password, true
}

// FuzzRegister: POST /api/auth/register. A 201 adds exactly one account, a pending plain user named
// as asked, whatever else the body says ("role", "approved", ...); anything else is a refusal under
// the common rule. Seeds: testdata/fuzz/FuzzRegister.
func FuzzRegister(f *testing.F) {
	s := fzAuthService(f, nil)
	f.Fuzz(func(t *testing.T, mode uint8, username, password string) {
		body, contentType, ok := fzCredentialsBody(mode, username, password)
		if !ok {
			return
		}
		before := s.state(t)
		a := s.do(t, "POST", "/api/auth/register", "", contentType, body)
		after := s.state(t)
		what := "register " + body
		if a.status != http.StatusCreated {
			checkRefused(t, what, a, before, after)
			return
		}
		user, _ := a.body["user"].(map[string]any)
		if after.users != before.users+1 || after.tokens != before.tokens || user == nil ||
			user["role"] != "user" || user["approved"] != false {
			t.Fatalf("%s: 201 %s; users %d -> %d, refresh tokens %d -> %d", what, a.raw, before.users, after.users, before.tokens, after.tokens)
		}
		if mode%3 == 0 && user["username"] != username {
			t.Fatalf("%s: registered as %v", what, user["username"])
		}
		var role string
		var approved bool
		if err := s.pool.QueryRow(context.Background(), `SELECT role, approved FROM users WHERE id = $1`, user["id"]).Scan(&role, &approved); err != nil ||
			role != "user" || approved {
			t.Fatalf("%s: stored as role %q approved %v (%v)", what, role, approved, err)
		}
	})
}

// FuzzLogin: POST /api/auth/login against the bootstrap admin and a pending user. A 200 opens one
// login (one refresh token) of an approved account and changes nothing else; anything else is a
// refusal under the common rule. Seeds: testdata/fuzz/FuzzLogin.
func FuzzLogin(f *testing.F) {
	s := fzAuthService(f, nil)
	if a := s.do(f, "POST", "/api/auth/register", "", fiber.MIMEApplicationJSON, creds("pending", "password1")); a.status != http.StatusCreated {
		f.Fatalf("register: %d %s", a.status, a.raw)
	}
	f.Fuzz(func(t *testing.T, mode uint8, username, password string) {
		body, contentType, ok := fzCredentialsBody(mode, username, password)
		if !ok {
			return
		}
		before := s.state(t)
		a := s.do(t, "POST", "/api/auth/login", "", contentType, body)
		after := s.state(t)
		what := "login " + body
		if a.status != http.StatusOK {
			checkRefused(t, what, a, before, after)
			return
		}
		user, _ := a.body["user"].(map[string]any)
		if user == nil || user["approved"] != true || a.body["token"] == "" || a.body["refresh_token"] == "" ||
			after.accounts != before.accounts || after.tokens != before.tokens+1 {
			t.Fatalf("%s: 200 %s; users %d -> %d, refresh tokens %d -> %d", what, a.raw, before.users, after.users, before.tokens, after.tokens)
		}
	})
}

// FuzzRefreshLogout: the refresh token of POST /api/auth/refresh and /api/auth/logout, in the body
// (well-formed or raw) or the cookie. A fuzzed token is never a live one (they are 256 random bits),
// so refresh must refuse it, and logout answers 204 (an unknown token is no error) or refuses it;
// either way nothing changes. Seeds: testdata/fuzz/FuzzRefreshLogout.
func FuzzRefreshLogout(f *testing.F) {
	s := fzAuthService(f, nil)
	login := s.do(f, "POST", "/api/auth/login", "", fiber.MIMEApplicationJSON, creds(adminName, adminPassword))
	access, _ := login.body["token"].(string)
	if login.status != http.StatusOK || access == "" {
		f.Fatalf("login: %d %s", login.status, login.raw)
	}
	f.Fuzz(func(t *testing.T, mode uint8, token string) {
		path, bearer := "/api/auth/refresh", ""
		if mode&4 != 0 {
			path, bearer = "/api/auth/logout", access
		}
		var body, contentType string
		var headers []string
		switch mode % 4 {
		case 0:
			b, _ := json.Marshal(map[string]string{"refresh_token": token})
			body, contentType = string(b), fiber.MIMEApplicationJSON
		case 1:
			body, contentType = token, fiber.MIMEApplicationJSON
		case 2:
			body = token // no Content-Type: decoded as JSON all the same
		default:
			if !fzHeaderValue(token) {
				return
			}
			headers = []string{"Cookie", "refresh_token=" + token}
		}
		before := s.state(t)
		a := s.do(t, "POST", path, bearer, contentType, body, headers...)
		after := s.state(t)
		what := path + " " + body + strings.Join(headers, ": ")
		if path == "/api/auth/logout" && a.status == http.StatusNoContent {
			if after != before {
				t.Fatalf("%s: 204, but the database changed", what)
			}
			return
		}
		checkRefused(t, what, a, before, after)
		if after.throttle != before.throttle {
			t.Fatalf("%s: %d, but login_throttle changed", what, a.status)
		}
	})
}

// FuzzAdminUsers: the admin's user routes with a fuzzed {id} (raw on the request line), approve and
// role bodies, the delete's query and the list's paging query, as the bootstrap admin, who is the
// only admin, beside one pending user (id 2). Refusals follow the common rule; so do reads. A
// change that is accepted (2xx) may only touch the pending user (undone at once, so that the next
// input finds the same two accounts and the admin can never be demoted through a promoted second
// admin) or the admin's updated_at: the admin's role, approval and token version stay, and with
// them the admin's token. Seeds: testdata/fuzz/FuzzAdminUsers.
func FuzzAdminUsers(f *testing.F) {
	s := fzAuthService(f, nil)
	login := s.do(f, "POST", "/api/auth/login", "", fiber.MIMEApplicationJSON, creds(adminName, adminPassword))
	admin, _ := login.body["token"].(string)
	if login.status != http.StatusOK || admin == "" {
		f.Fatalf("login: %d %s", login.status, login.raw)
	}
	if a := s.do(f, "POST", "/api/auth/register", "", fiber.MIMEApplicationJSON, creds("pending", "password1")); a.status != http.StatusCreated || a.body["user"].(map[string]any)["id"] != float64(2) {
		f.Fatalf("register: %d %s", a.status, a.raw)
	}
	ctx := context.Background()
	var adminBefore string
	if err := s.pool.QueryRow(ctx, `SELECT concat_ws(',', role, approved, token_version) FROM users WHERE id = 1`).Scan(&adminBefore); err != nil {
		f.Fatal(err)
	}
	var pending []any
	rows, err := s.pool.Query(ctx, `SELECT id, uuid, username, password_hash, role, approved, token_version, created_at, updated_at FROM users WHERE id = 2`)
	if err != nil {
		f.Fatal(err)
	}
	for rows.Next() {
		if pending, err = rows.Values(); err != nil {
			f.Fatal(err)
		}
	}
	rows.Close()
	restorePending := func(t *testing.T) {
		_, err := s.pool.Exec(ctx, `DELETE FROM users WHERE id = 2`)
		if err == nil {
			_, err = s.pool.Exec(ctx, `INSERT INTO users (id, uuid, username, password_hash, role, approved, token_version, created_at, updated_at)
				OVERRIDING SYSTEM VALUE VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`, pending...)
		}
		if err != nil {
			t.Fatalf("restoring the pending user: %v", err)
		}
	}

	f.Fuzz(func(t *testing.T, op uint8, id, body string) {
		if strings.ContainsFunc(id, fzNotOnRequestLine) {
			return // no request line carries it
		}
		var method, target string
		switch op % 5 {
		case 0:
			method, target = "GET", "/api/admin/users/"+id
		case 1:
			method, target = "PUT", "/api/admin/users/"+id+"/approve"
		case 2:
			method, target = "PUT", "/api/admin/users/"+id+"/role"
		case 3:
			if strings.ContainsFunc(body, fzNotOnRequestLine) {
				return
			}
			method, target, body = "DELETE", "/api/admin/users/"+id+"?"+body, ""
		default:
			method, target = "GET", "/api/admin/users?"+id
		}
		contentType := ""
		if body != "" {
			contentType = fiber.MIMEApplicationJSON
		}
		before := s.state(t)
		a := s.do(t, method, target, admin, contentType, body)
		after := s.state(t)
		what := method + " " + target + " " + body
		if a.status >= 300 {
			checkRefused(t, what, a, before, after)
			if after.throttle != before.throttle {
				t.Fatalf("%s: %d, but login_throttle changed", what, a.status)
			}
			return
		}
		if method == "GET" {
			if after != before {
				t.Fatalf("%s: %d, but the database changed", what, a.status)
			}
			return
		}
		var adminAfter string
		if err := s.pool.QueryRow(ctx, `SELECT concat_ws(',', role, approved, token_version) FROM users WHERE id = 1`).Scan(&adminAfter); err != nil || adminAfter != adminBefore {
			t.Fatalf("%s: %d %s changed the admin: %s -> %s (%v)", what, a.status, a.raw, adminBefore, adminAfter, err)
		}
		if after.users != before.users && after.users != before.users-1 || after.throttle != before.throttle {
			t.Fatalf("%s: %d %s; users %d -> %d", what, a.status, a.raw, before.users, after.users)
		}
		restorePending(t)
	})
}

// fzHeaderValue reports whether a client can send v as a header value: visible ASCII, spaces and
// tabs (fasthttp refuses other control bytes before any handler runs).
func fzHeaderValue(v string) bool {
	return !strings.ContainsFunc(v, func(r rune) bool { return r != '\t' && (r < ' ' || r > '~') })
}

// fzNotOnRequestLine is what a request target cannot contain: it would end the target or the line.
func fzNotOnRequestLine(r rune) bool { return r <= ' ' || r == 0x7f }
