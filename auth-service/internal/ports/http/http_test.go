package http_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/gofiber/fiber/v2"

	"limen/auth-service/internal/adapters/argon2"
	"limen/auth-service/internal/service"
	"limen/auth-service/migrations"
	"limen/libs/contract"
	"limen/libs/outbox"
	"limen/libs/testkit/apidoc"
	"limen/libs/testkit/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const adminName, adminPassword = "root", "root-password"

type client struct {
	t       *testing.T
	app     *fiber.App
	dsn     string
	brokers []string
}

func newService(t *testing.T, tweak func(*service.Config)) client {
	t.Helper()
	cfg := service.Config{
		DatabaseURL: pgtest.NewDatabase(t), DataDir: t.TempDir(), Settings: contract.Settings{Issuer: "limen", Audience: "limen-api"},
		AccessTTL: time.Hour, RefreshTTL: 24 * time.Hour, AdminUsername: adminName, AdminPassword: adminPassword,
		MaxFailures: 3, MaxFailuresPerIP: 10, LoginLockout: time.Minute,
		// Cheap hashing keeps the suite fast; production uses argon2.DefaultParams.
		PasswordHashParams: argon2.Params{Memory: 1024, Iterations: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32},
	}
	if tweak != nil {
		tweak(&cfg)
	}
	svc, _ := startService(t, &cfg)
	return client{t: t, app: svc.App(), dsn: cfg.DatabaseURL, brokers: cfg.KafkaBrokers}
}

// startService migrates cfg's database, starts a broker when cfg names none, and builds and runs the
// service until the test ends; newService and the fuzz targets share it.
func startService(tb testing.TB, cfg *service.Config) (*service.Service, *pgxpool.Pool) {
	tb.Helper()
	ctx := context.Background()
	if cfg.KafkaBrokers == nil {
		broker, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, contract.TopicUserEvents))
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(broker.Close)
		cfg.KafkaBrokers = broker.ListenAddrs()
	}
	pool, err := outbox.Open(ctx, cfg.DatabaseURL, "auth", migrations.FS)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(pool.Close)
	svc, err := service.New(ctx, *cfg, pool, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		tb.Fatal(err)
	}
	apidoc.CheckRoutes(tb, service.Name, svc.App())
	runCtx, stop := context.WithCancel(ctx)
	stopped := make(chan struct{})
	go func() { defer close(stopped); _ = svc.Run(runCtx) }()
	tb.Cleanup(func() { stop(); <-stopped })
	return svc, pool
}

type response struct {
	status int
	header http.Header
	body   map[string]any
	// list is the body when it is an array.
	list []any
	raw  string
}

func (c client) do(method, path, token, body string, headers ...string) response {
	c.t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := c.app.Test(req, 10_000)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	apidoc.Check(c.t, req, resp)
	raw, _ := io.ReadAll(resp.Body)
	out := response{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &out.body)
	_ = json.Unmarshal(raw, &out.list)
	return out
}

// expect checks the status and, for an error (status 400 and above), the error body {"code": status,
// "message": message}: an error is never checked by its status alone.
func (r response) expect(t *testing.T, status int, message string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.raw)
	}
	if status >= 400 && message == "" {
		t.Fatalf("status %d is an error: name the message its body must carry (%s)", status, r.raw)
	}
	if message != "" && (r.body["message"] != message || r.body["code"] != float64(status)) {
		t.Fatalf("body %s, want code %d message %q", r.raw, status, message)
	}
}

func creds(user, password string) string {
	b, _ := json.Marshal(map[string]string{"username": user, "password": password})
	return string(b)
}

func (c client) login(user, password string) response {
	return c.do("POST", "/api/auth/login", "", creds(user, password))
}

func (c client) adminToken() string {
	r := c.login(adminName, adminPassword)
	r.expect(c.t, 200, "")
	return r.body["token"].(string)
}

func (c client) registerApproved(user, password string) (id float64, token string) {
	r := c.do("POST", "/api/auth/register", "", creds(user, password))
	r.expect(c.t, 201, "")
	id = r.body["user"].(map[string]any)["id"].(float64)
	c.do("PUT", "/api/admin/users/"+ftoa(id)+"/approve", c.adminToken(), `{"approved":true}`).expect(c.t, 200, "")
	r = c.login(user, password)
	r.expect(c.t, 200, "")
	return id, r.body["token"].(string)
}

func ftoa(f float64) string { return strings.TrimSuffix(strings.TrimSuffix(jsonNumber(f), ".0"), ".") }

func jsonNumber(f float64) string { b, _ := json.Marshal(f); return string(b) }

func TestRegister_CreatesPendingUser(t *testing.T) {
	c := newService(t, nil)
	r := c.do("POST", "/api/auth/register", "", creds("ada", "password1"))
	r.expect(t, 201, "")
	user := r.body["user"].(map[string]any)
	for _, field := range []string{"id", "uuid", "username", "role", "approved", "created_at", "updated_at"} {
		if _, ok := user[field]; !ok {
			t.Errorf("user lacks %s: %s", field, r.raw)
		}
	}
	if user["approved"] != false || user["role"] != "user" || r.body["message"] != "User registered successfully. Waiting for admin approval" {
		t.Fatalf("unexpected %s", r.raw)
	}
	c.login("ada", "password1").expect(t, 403, "Account pending approval")
}

func TestRegister_AutoApprove(t *testing.T) {
	c := newService(t, func(cfg *service.Config) { cfg.AutoApprove = true })
	r := c.do("POST", "/api/auth/register", "", creds("ada", "password1"))
	r.expect(t, 201, "")
	if r.body["message"] != "User registered successfully" || r.body["user"].(map[string]any)["approved"] != true {
		t.Fatalf("unexpected %s", r.raw)
	}
	c.login("ada", "password1").expect(t, 200, "")
}

func TestRegister_BadInput(t *testing.T) {
	c := newService(t, nil)
	c.do("POST", "/api/auth/register", "", creds("ada", "password1")).expect(t, 201, "")
	cases := []struct {
		name, body string
		status     int
		message    string
	}{
		{"taken", creds("ada", "password2"), 409, "Username already exists"},
		{"taken other case", creds("ADA", "password2"), 409, "Username already exists"},
		{"short name", creds("ab", "password1"), 400, "Field 'username' must be 3-32 characters of letters, digits, '_', '.' or '-'"},
		{"bad char", creds("a b c", "password1"), 400, "Field 'username' must be 3-32 characters of letters, digits, '_', '.' or '-'"},
		{"short password", creds("grace", "short"), 400, "Field 'password' must be 8-128 characters"},
		{"missing password", `{"username":"grace"}`, 400, "Field 'password' is required"},
		{"wrong type", `{"username":1,"password":"password1"}`, 400, "Invalid value for field 'username': expected string"},
		{"malformed", `{"username":`, 400, "Invalid JSON body"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := c.do("POST", "/api/auth/register", "", tc.body)
			r.expect(t, tc.status, tc.message)
			if tc.status == 400 && tc.name != "malformed" && !strings.Contains(r.raw, "'") {
				t.Fatalf("400 must name the field: %s", r.raw)
			}
		})
	}
	r := c.do("POST", "/api/auth/register", "", "username=x", "Content-Type", "text/plain")
	r.expect(t, 415, "Content-Type must be application/json")
}

func TestLogin_ReturnsTheContractBodyAndCookie(t *testing.T) {
	c := newService(t, nil)
	r := c.login(adminName, adminPassword)
	r.expect(t, 200, "")
	for _, field := range []string{"token", "expires_at", "refresh_token", "refresh_expires_at", "user", "access_token", "expires_in", "token_type"} {
		if _, ok := r.body[field]; !ok {
			t.Errorf("login body lacks %s", field)
		}
	}
	if r.body["token"] != r.body["access_token"] || r.body["token_type"] != "Bearer" || r.body["expires_in"].(float64) < 3590 {
		t.Fatalf("unexpected %s", r.raw)
	}
	cookie := r.header.Get("Set-Cookie")
	if !strings.Contains(cookie, "refresh_token=") || !strings.Contains(cookie, "HttpOnly") || !strings.Contains(strings.ToLower(cookie), "samesite=lax") {
		t.Fatalf("cookie %q", cookie)
	}
}

func TestLogin_WrongPasswordAndUnknownUserLookAlike(t *testing.T) {
	c := newService(t, nil)
	c.login(adminName, "not-the-password").expect(t, 401, "Invalid username or password")
	c.login("nobody", "whatever1").expect(t, 401, "Invalid username or password")
}

func TestLogin_TooManyFailures_Answers429WithRetryAfter(t *testing.T) {
	c := newService(t, nil)
	for range 3 {
		c.login(adminName, "wrong-password").expect(t, 401, "Invalid username or password")
	}
	r := c.login(adminName, adminPassword)
	r.expect(t, 429, "Too many failed login attempts, try again later")
	if r.header.Get("Retry-After") == "" {
		t.Fatal("no Retry-After")
	}
}

func TestLogin_TooManyFailuresFromOneAddress_Answers429(t *testing.T) {
	c := newService(t, func(cfg *service.Config) { cfg.MaxFailuresPerIP = 4 })
	for i := range 4 {
		c.login("user"+string(rune('a'+i))+"x", "wrong-password").expect(t, 401, "Invalid username or password")
	}
	c.login(adminName, adminPassword).expect(t, 429, "Too many failed login attempts, try again later")
}

func TestRefresh_RotatesAndReuseRevokesTheFamily(t *testing.T) {
	c := newService(t, nil)
	first := c.login(adminName, adminPassword).body["refresh_token"].(string)

	r := c.do("POST", "/api/auth/refresh", "", `{"refresh_token":"`+first+`"}`)
	r.expect(t, 200, "")
	second := r.body["refresh_token"].(string)
	if second == first || r.body["token"] == "" {
		t.Fatal("refresh did not rotate")
	}
	// The spent token again: the whole login ends, the rotated one too.
	c.do("POST", "/api/auth/refresh", "", `{"refresh_token":"`+first+`"}`).expect(t, 401, "Invalid refresh token")
	c.do("POST", "/api/auth/refresh", "", `{"refresh_token":"`+second+`"}`).expect(t, 401, "Invalid refresh token")
}

func TestRefresh_FromCookie(t *testing.T) {
	c := newService(t, nil)
	token := c.login(adminName, adminPassword).body["refresh_token"].(string)
	c.do("POST", "/api/auth/refresh", "", "", "Cookie", "refresh_token="+token).expect(t, 200, "")
}

func TestRefresh_ConcurrentUseOfOneToken_OnlyOneWins(t *testing.T) {
	c := newService(t, nil)
	token := c.login(adminName, adminPassword).body["refresh_token"].(string)
	var wg sync.WaitGroup
	answers := make([]response, 4)
	for i := range answers {
		wg.Go(func() { answers[i] = c.do("POST", "/api/auth/refresh", "", `{"refresh_token":"`+token+`"}`) })
	}
	wg.Wait()
	ok, statuses := 0, make([]int, len(answers))
	for i, r := range answers {
		statuses[i] = r.status
		if r.status == 200 {
			ok++
		} else {
			r.expect(t, 401, "Invalid refresh token")
		}
	}
	if ok > 1 {
		t.Fatalf("one refresh token was spent %d times: %v", ok, statuses)
	}
}

func TestRefreshToken_IsNotAnAccessToken(t *testing.T) {
	c := newService(t, nil)
	refresh := c.login(adminName, adminPassword).body["refresh_token"].(string)
	c.do("GET", "/api/auth/me", refresh, "").expect(t, 401, "Authentication required")
}

func TestLogout_EndsTheLogin(t *testing.T) {
	c := newService(t, nil)
	r := c.login(adminName, adminPassword)
	token, refresh := r.body["token"].(string), r.body["refresh_token"].(string)
	c.do("POST", "/api/auth/logout", token, `{"refresh_token":"`+refresh+`"}`).expect(t, 204, "")
	c.do("POST", "/api/auth/refresh", "", `{"refresh_token":"`+refresh+`"}`).expect(t, 401, "Invalid refresh token")
	c.do("POST", "/api/auth/logout", "", `{"refresh_token":"`+refresh+`"}`).expect(t, 401, "Authentication required")
}

func TestMe_AndJWKS(t *testing.T) {
	c := newService(t, nil)
	r := c.do("GET", "/api/auth/me", c.adminToken(), "")
	r.expect(t, 200, "")
	if r.body["username"] != adminName || r.body["role"] != "admin" {
		t.Fatalf("me %s", r.raw)
	}
	c.do("GET", "/api/auth/me", "", "").expect(t, 401, "Authentication required")
	c.do("GET", "/api/auth/me", "garbage", "").expect(t, 401, "Authentication required")
	jwks := c.do("GET", "/api/auth/jwks", "", "")
	jwks.expect(t, 200, "")
	if keys, _ := jwks.body["keys"].([]any); len(keys) != 1 {
		t.Fatalf("jwks %s", jwks.raw)
	}
}

func TestAdmin_ManagesUsers(t *testing.T) {
	c := newService(t, nil)
	admin := c.adminToken()
	id, userToken := c.registerApproved("ada", "password1")
	uid := ftoa(id)

	c.do("GET", "/api/admin/users", userToken, "").expect(t, 403, "Admin access required")
	list := c.do("GET", "/api/admin/users?limit=1&offset=0", admin, "")
	list.expect(t, 200, "")
	if list.header.Get("X-Total-Count") != "2" || len(list.list) != 1 {
		t.Fatalf("list %v %s", list.header, list.raw)
	}
	c.do("GET", "/api/admin/users?limit=1000", admin, "").expect(t, 400, "Query parameter 'limit' must be between 1 and 200")
	c.do("GET", "/api/admin/users?offset=-1", admin, "").expect(t, 400, "Query parameter 'offset' must be 0 or more")
	c.do("GET", "/api/admin/users?limit=x", admin, "").expect(t, 400, "Query parameter 'limit' must be a number")
	c.do("GET", "/api/admin/users/"+uid, admin, "").expect(t, 200, "")
	c.do("GET", "/api/admin/users/999", admin, "").expect(t, 404, "User not found")
	c.do("GET", "/api/admin/users/abc", admin, "").expect(t, 400, "Invalid user id: abc")
	c.do("PUT", "/api/admin/users/"+uid+"/approve", admin, `{"approved":"no"}`).expect(t, 400, "Invalid value for field 'approved': expected boolean")
	c.do("PUT", "/api/admin/users/"+uid+"/role", admin, `{"role":"god"}`).expect(t, 400, "Field 'role' must be one of: admin, user")

	r := c.do("PUT", "/api/admin/users/"+uid+"/role", admin, `{"role":"admin"}`)
	r.expect(t, 200, "")
	if r.body["role"] != "admin" {
		t.Fatalf("role %s", r.raw)
	}
	// Promoted: tokens signed before the change are revoked (the client refreshes); a new login's
	// token is an admin's. Demoted: admin routes refuse at once, since roles are read from the database.
	c.waitRevoked(userToken)
	userToken = c.login("ada", "password1").body["token"].(string)
	c.do("GET", "/api/admin/users", userToken, "").expect(t, 200, "")
	c.do("PUT", "/api/admin/users/"+uid+"/role", admin, `{"role":"user"}`).expect(t, 200, "")
	c.do("GET", "/api/admin/users", userToken, "").expect(t, 403, "Admin access required")

	// Suspending ends the user's session at once.
	c.do("PUT", "/api/admin/users/"+uid+"/approve", admin, `{"approved":false}`).expect(t, 200, "")
	c.do("GET", "/api/auth/me", userToken, "").expect(t, 401, "Authentication required")

	r = c.do("DELETE", "/api/admin/users/"+uid, admin, "")
	r.expect(t, 200, "")
	if r.body["message"] != "User deleted successfully" || r.body["user_id"] != id {
		t.Fatalf("delete %s", r.raw)
	}
	c.do("DELETE", "/api/admin/users/"+uid, admin, "").expect(t, 404, "User not found")
}

func TestAdmin_LastAdminAndSelfAreProtected(t *testing.T) {
	c := newService(t, nil)
	admin := c.adminToken()
	me := c.do("GET", "/api/auth/me", admin, "").body["id"].(float64)
	c.do("DELETE", "/api/admin/users/"+ftoa(me), admin, "").expect(t, 409, "Cannot delete your own account")
	c.do("PUT", "/api/admin/users/"+ftoa(me)+"/role", admin, `{"role":"user"}`).expect(t, 409, "Cannot remove the last admin")
	c.do("PUT", "/api/admin/users/"+ftoa(me)+"/approve", admin, `{"approved":false}`).expect(t, 409, "Cannot remove the last admin")
}

func TestAdmin_TwoAdminsDemotingEachOtherConcurrently_LeaveOneAdmin(t *testing.T) {
	c := newService(t, nil)
	admin := c.adminToken()
	me := c.do("GET", "/api/auth/me", admin, "").body["id"].(float64)
	id, other := c.registerApproved("grace", "password1")
	c.do("PUT", "/api/admin/users/"+ftoa(id)+"/role", admin, `{"role":"admin"}`).expect(t, 200, "")

	var wg sync.WaitGroup
	var first, second response
	wg.Go(func() { first = c.do("PUT", "/api/admin/users/"+ftoa(id)+"/role", admin, `{"role":"user"}`) })
	wg.Go(func() { second = c.do("PUT", "/api/admin/users/"+ftoa(me)+"/role", other, `{"role":"user"}`) })
	wg.Wait()
	t.Logf("demotions: %d %s / %d %s", first.status, first.raw, second.status, second.raw)
	admins := 0
	for _, tok := range []string{admin, other} {
		r := c.do("GET", "/api/auth/me", tok, "")
		if r.body["role"] == "admin" {
			admins++
		}
	}
	if admins != 1 {
		t.Fatalf("%d admins left", admins)
	}
}

func TestBootstrapAdmin_SecondStartKeepsOneAdmin(t *testing.T) {
	first := newService(t, nil)
	second := newService(t, func(cfg *service.Config) { cfg.DatabaseURL = first.dsn })
	r := second.do("GET", "/api/admin/users", second.adminToken(), "")
	r.expect(t, 200, "")
	if r.header.Get("X-Total-Count") != "1" || len(r.list) != 1 {
		t.Fatalf("users after two starts: %s", r.raw)
	}
}
