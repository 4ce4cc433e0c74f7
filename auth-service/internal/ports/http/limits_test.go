package http_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"limen/auth-service/internal/adapters/argon2"
	"limen/auth-service/internal/service"
	"limen/auth-service/migrations"
	"limen/libs/pgdb"
	"limen/libs/testkit/memtest"
)

// testPeer is the peer address of every request app.Test serves; trusting it lets a test name the
// client in X-Forwarded-For, as the gateway does.
const testPeer = "0.0.0.0"

func trustTestPeer(cfg *service.Config) { cfg.TrustedProxies = []string{testPeer} }

// try is do for many goroutines at once: failures are returned, not fatal.
func (c client) try(path, body string, headers ...string) (response, error) {
	req := httptest.NewRequest("POST", path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := c.app.Test(req, -1)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := response{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &out.body)
	return out, nil
}

// burst sends n requests at once; body(i) and headers(i) make the i-th.
func (c client) burst(n int, path string, body func(i int) string, headers func(i int) []string) []response {
	c.t.Helper()
	out := make([]response, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			out[i], errs[i] = c.try(path, body(i), headers(i)...)
		})
	}
	close(start)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			c.t.Fatal(err)
		}
	}
	return out
}

// tally counts answers by status. Every error must carry the error body with messages[its status],
// every 429 and 503 Retry-After too.
func tally(t *testing.T, rs []response, messages map[int]string) map[int]int {
	t.Helper()
	n := map[int]int{}
	for _, r := range rs {
		n[r.status]++
		if (r.status == 429 || r.status == 503) && r.header.Get("Retry-After") == "" {
			t.Fatalf("%d without Retry-After: %s", r.status, r.raw)
		}
		if r.status >= 400 {
			r.expect(t, r.status, messages[r.status])
		}
	}
	return n
}

// loginRefusals are the messages of a refused login: a wrong password, and a throttled attempt.
var loginRefusals = map[int]string{401: "Invalid username or password", 429: "Too many failed login attempts, try again later"}

func from(ip string) []string { return []string{"X-Forwarded-For", ip} }

func TestLogin_ParallelWrongPasswords_ExactlyTheLimitGetAVerdict(t *testing.T) {
	c := newService(t, func(cfg *service.Config) {
		trustTestPeer(cfg)
		cfg.MaxFailures, cfg.MaxFailuresPerAccount, cfg.MaxFailuresPerIP = 5, 50, 20
	})
	rs := c.burst(60, "/api/auth/login", func(int) string { return creds(adminName, "wrong-password") },
		func(int) []string { return from("203.0.113.7") })
	if n := tally(t, rs, loginRefusals); n[401] != 5 || n[429] != 55 {
		t.Fatalf("answers %v, want 5×401 and 55×429", n)
	}
	for _, r := range rs {
		if r.status == 429 && r.body["message"] != "Too many failed login attempts, try again later" {
			t.Fatalf("429 body %s", r.raw)
		}
	}
	// The attacker knew the name, but the owner, elsewhere, still gets in.
	c.do("POST", "/api/auth/login", "", creds(adminName, adminPassword), from("198.51.100.1")...).expect(t, 200, "")
	// From the attacker's address the account stays shut, the right password included.
	c.do("POST", "/api/auth/login", "", creds(adminName, adminPassword), from("203.0.113.7")...).expect(t, 429, "Too many failed login attempts, try again later")
}

func TestLogin_ParallelUnknownUsersFromOneAddress_ExactlyThePerAddressLimit(t *testing.T) {
	c := newService(t, func(cfg *service.Config) {
		trustTestPeer(cfg)
		cfg.MaxFailures, cfg.MaxFailuresPerAccount, cfg.MaxFailuresPerIP = 5, 50, 20
	})
	rs := c.burst(60, "/api/auth/login", func(i int) string { return creds(fmt.Sprintf("ghost%02d", i), "wrong-password") },
		func(int) []string { return from("203.0.113.9") })
	if n := tally(t, rs, loginRefusals); n[401] != 20 || n[429] != 40 {
		t.Fatalf("answers %v, want 20×401 and 40×429", n)
	}
	c.do("POST", "/api/auth/login", "", creds(adminName, adminPassword), from("198.51.100.1")...).expect(t, 200, "")
}

func TestLogin_GlobalPerAccountLimit_HoldsAcrossAddresses(t *testing.T) {
	c := newService(t, func(cfg *service.Config) {
		trustTestPeer(cfg)
		cfg.MaxFailures, cfg.MaxFailuresPerAccount, cfg.MaxFailuresPerIP = 5, 8, 20
	})
	rs := c.burst(40, "/api/auth/login", func(int) string { return creds(adminName, "wrong-password") },
		func(i int) []string { return from(fmt.Sprintf("203.0.113.%d", i+1)) })
	if n := tally(t, rs, loginRefusals); n[401] != 8 || n[429] != 32 {
		t.Fatalf("answers %v, want 8×401 and 32×429", n)
	}
}

func TestRegister_ParallelFromOneAddress_AreLimited(t *testing.T) {
	c := newService(t, func(cfg *service.Config) {
		trustTestPeer(cfg)
		cfg.RegisterMaxPerIP, cfg.RegisterWindow = 10, time.Hour
	})
	rs := c.burst(30, "/api/auth/register", func(i int) string { return creds(fmt.Sprintf("bot%02d", i), "password1") },
		func(int) []string { return from("203.0.113.5") })
	if n := tally(t, rs, map[int]string{429: "Too many registrations, try again later"}); n[201] != 10 || n[429] != 20 {
		t.Fatalf("answers %v, want 10×201 and 20×429", n)
	}
	for _, r := range rs {
		if r.status == 429 && r.body["message"] != "Too many registrations, try again later" {
			t.Fatalf("429 body %s", r.raw)
		}
	}
	if n := countUsers(t, c.dsn, "bot%"); n != 10 {
		t.Fatalf("%d accounts made, want 10", n)
	}
	c.do("POST", "/api/auth/register", "", creds("human", "password1"), from("198.51.100.2")...).expect(t, 201, "")
}

func countUsers(t *testing.T, dsn, like string) int {
	t.Helper()
	pool, err := pgdb.Open(context.Background(), dsn, "auth", migrations.FS)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM users WHERE lower(username) LIKE $1`, like).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// slowHash takes tens of milliseconds, like production's, but with less memory.
var slowHash = argon2.Params{Memory: 32 * 1024, Iterations: 3, Parallelism: 1, SaltLength: 16, KeyLength: 32}

func TestHashing_Saturated_Answers503WithRetryAfter(t *testing.T) {
	c := newService(t, func(cfg *service.Config) {
		trustTestPeer(cfg)
		cfg.PasswordHashParams = slowHash
		cfg.HashConcurrency, cfg.HashQueueTimeout = 1, time.Millisecond
	})
	rs := c.burst(20, "/api/auth/login", func(i int) string { return creds(fmt.Sprintf("ghost%02d", i), "wrong-password") },
		func(i int) []string { return from(fmt.Sprintf("203.0.113.%d", i+1)) })
	n := tally(t, rs, map[int]string{401: "Invalid username or password", 503: "Server busy, retry shortly"})
	if n[503] == 0 || n[503]+n[401] != 20 {
		t.Fatalf("answers %v, want some 503s and 401s for the rest", n)
	}
	for _, r := range rs {
		if r.status == 503 && (r.header.Get("Retry-After") != "1" || r.body["message"] != "Server busy, retry shortly") {
			t.Fatalf("503 %v %s", r.header, r.raw)
		}
	}
	t.Logf("one hashing slot, 1 ms queue: %v", n)
}

func TestRegister_CallerGoneWhileHashing_CreatesNoAccount(t *testing.T) {
	c := newService(t, func(cfg *service.Config) {
		cfg.PasswordHashParams = slowHash
		// The gateway has given up by the time the hash is done.
		cfg.RequestTimeout = 5 * time.Millisecond
	})
	r := c.do("POST", "/api/auth/register", "", creds("late", "password1"))
	r.expect(t, 503, "Server busy, retry shortly")
	if n := countUsers(t, c.dsn, "late"); n != 0 {
		t.Fatal("an account was created for a request nobody waited for")
	}
}

// rssKiB reads a field of /proc/self/status (VmRSS, VmHWM) in KiB.
func rssKiB(t *testing.T, field string) int {
	t.Helper()
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip("no /proc/self/status:", err)
	}
	for line := range strings.SplitSeq(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			return n
		}
	}
	t.Skipf("no %s in /proc/self/status", field)
	return 0
}

// TestHashing_BurstOf100Logins_StaysWithinTheMemoryBound runs production's argon2id cost (64 MiB a
// hash). Without the bound the burst would hold up to 100 × 64 MiB at once. With it, K hashes are
// live at most, and the process stays within the bounds documented on argon2.DefaultConcurrency:
// about 3 × K × 64 MiB with the collector's defaults, K × 64 MiB and the base under a memory limit.
func TestHashing_BurstOf100Logins_StaysWithinTheMemoryBound(t *testing.T) {
	if testing.Short() {
		t.Skip("200 production-cost hashes")
	}
	c := newService(t, func(cfg *service.Config) {
		cfg.PasswordHashParams = argon2.DefaultParams
		// All of them wait their turn here, however slow a loaded machine makes the hashes: measured
		// is memory, not shedding.
		cfg.HashQueueTimeout, cfg.RequestTimeout = time.Minute, time.Minute
		cfg.MaxFailures, cfg.MaxFailuresPerAccount, cfg.MaxFailuresPerIP = 1000, 1000, 1000
	})
	k := uint64(argon2.DefaultConcurrency())
	perHash := uint64(argon2.DefaultParams.Memory) << 10
	const base = 64 << 20 // the service's own heap and the requests', generously

	measure := func(t *testing.T) (heapGrowth, rssGrowth uint64) {
		// What an earlier burst left mapped is not this one's; VmHWM starts again at the current RSS.
		debug.FreeOSMemory()
		_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
		rssBefore := rssKiB(t, "VmRSS")
		heap := memtest.Watch()
		start := time.Now()
		rs := c.burst(100, "/api/auth/login", func(int) string { return creds(adminName, adminPassword) },
			func(int) []string { return nil })
		took := time.Since(start)
		heapGrowth, _ = heap.End()
		hwm := rssKiB(t, "VmHWM")
		if n := tally(t, rs, nil); n[200] != 100 {
			t.Fatalf("answers %v, want 100×200", n)
		}
		rssGrowth = uint64(max(hwm-rssBefore, 0)) << 10
		t.Logf("K=%d (GOMAXPROCS %d): 100 logins in %v; heap in use peak +%d MiB; RSS %d MiB, peak %d MiB (+%d MiB)",
			k, runtime.GOMAXPROCS(0), took.Round(time.Millisecond), heapGrowth>>20, rssBefore>>10, hwm>>10, rssGrowth>>20)
		return heapGrowth, rssGrowth
	}

	t.Run("GOGC only", func(t *testing.T) {
		bound := 3*k*perHash + 2*base
		if heapGrowth, rssGrowth := measure(t); heapGrowth > bound || rssGrowth > bound {
			t.Fatalf("heap grew %d MiB, RSS %d MiB; the bound is %d MiB", heapGrowth>>20, rssGrowth>>20, bound>>20)
		}
	})
	t.Run("GOMEMLIMIT", func(t *testing.T) {
		debug.FreeOSMemory()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		limit := m.Sys - m.HeapReleased + k*perHash + base
		defer debug.SetMemoryLimit(debug.SetMemoryLimit(int64(limit)))
		// The limit is soft: the collector holds the heap near it, the hashes themselves a little above.
		bound := k*perHash + 2*base
		if _, rssGrowth := measure(t); rssGrowth > bound {
			t.Fatalf("RSS grew %d MiB; the bound is %d MiB (limit %d MiB)", rssGrowth>>20, bound>>20, limit>>20)
		}
	})
}

func refreshWith(c client, token, agent string) response {
	c.t.Helper()
	return c.do("POST", "/api/auth/refresh", "", `{"refresh_token":"`+token+`"}`, "User-Agent", agent)
}

func TestRefresh_TwoTabsAtOnce_BothKeepTheLogin(t *testing.T) {
	c := newService(t, func(cfg *service.Config) { cfg.RefreshReuseGrace = 10 * time.Second })
	first := c.login(adminName, adminPassword).body["refresh_token"].(string)
	rs := c.burst(4, "/api/auth/refresh", func(int) string { return `{"refresh_token":"` + first + `"}` },
		func(int) []string { return []string{"User-Agent", "Firefox"} })
	seen := map[string]bool{}
	for _, r := range rs {
		r.expect(t, 200, "")
		seen[r.body["refresh_token"].(string)] = true
	}
	if len(seen) != 4 {
		t.Fatalf("%d distinct successors for 4 tabs", len(seen))
	}
	for token := range seen { // every tab carries on
		refreshWith(c, token, "Firefox").expect(t, 200, "")
	}
}

func TestRefresh_ReuseByAnotherClient_RevokesTheFamily(t *testing.T) {
	c := newService(t, func(cfg *service.Config) { cfg.RefreshReuseGrace = 10 * time.Second })
	first := c.login(adminName, adminPassword).body["refresh_token"].(string)
	r := refreshWith(c, first, "Firefox")
	r.expect(t, 200, "")
	second := r.body["refresh_token"].(string)
	refreshWith(c, first, "curl/8.0").expect(t, 401, "Invalid refresh token")
	refreshWith(c, second, "Firefox").expect(t, 401, "Invalid refresh token")
}

func TestRefresh_ReuseAfterTheGrace_RevokesTheFamily(t *testing.T) {
	c := newService(t, func(cfg *service.Config) { cfg.RefreshReuseGrace = 300 * time.Millisecond })
	first := c.login(adminName, adminPassword).body["refresh_token"].(string)
	r := refreshWith(c, first, "Firefox")
	r.expect(t, 200, "")
	second := r.body["refresh_token"].(string)
	refreshWith(c, first, "Firefox").expect(t, 200, "") // within the grace
	time.Sleep(400 * time.Millisecond)
	refreshWith(c, first, "Firefox").expect(t, 401, "Invalid refresh token")
	refreshWith(c, second, "Firefox").expect(t, 401, "Invalid refresh token")
}

func secureCookie(r response) bool {
	for _, v := range r.header.Values("Set-Cookie") {
		if strings.HasPrefix(v, "refresh_token=") {
			for attr := range strings.SplitSeq(v, ";") {
				if strings.EqualFold(strings.TrimSpace(attr), "secure") {
					return true
				}
			}
		}
	}
	return false
}

func TestRefreshCookie_SecureUnderTLSOrWhenConfigured(t *testing.T) {
	login := func(c client, headers ...string) response {
		r := c.do("POST", "/api/auth/login", "", creds(adminName, adminPassword), headers...)
		r.expect(t, 200, "")
		return r
	}
	plain := newService(t, trustTestPeer)
	if secureCookie(login(plain)) {
		t.Fatal("Secure over plain HTTP")
	}
	if !secureCookie(login(plain, "X-Forwarded-Proto", "https")) {
		t.Fatal("not Secure behind a trusted proxy that terminated TLS")
	}
	configured := newService(t, func(cfg *service.Config) { cfg.CookieSecure = true })
	if !secureCookie(login(configured)) {
		t.Fatal("not Secure with LIMEN_COOKIE_SECURE")
	}
	// Refresh and logout set the cookie the same way.
	refresh := login(plain, "X-Forwarded-Proto", "https").body["refresh_token"].(string)
	if !secureCookie(plain.do("POST", "/api/auth/refresh", "", `{"refresh_token":"`+refresh+`"}`, "X-Forwarded-Proto", "https")) {
		t.Fatal("refresh's cookie not Secure")
	}
	// Only a trusted proxy is believed.
	untrusted := newService(t, func(cfg *service.Config) { cfg.TrustedProxies = []string{"192.0.2.1"} })
	if secureCookie(login(untrusted, "X-Forwarded-Proto", "https")) {
		t.Fatal("an untrusted peer's X-Forwarded-Proto was believed")
	}
}

func TestBootstrapAdmin_RestartChangesNoExistingAccount(t *testing.T) {
	first := newService(t, nil)
	root := first.adminToken()
	rootID := first.do("GET", "/api/auth/me", root, "").body["id"].(float64)
	otherID, other := first.registerApproved("other", "password1")
	first.do("PUT", "/api/admin/users/"+ftoa(otherID)+"/role", root, `{"role":"admin"}`).expect(t, 200, "")
	// The other admin removes the bootstrap account, and somebody registers its name in capitals.
	first.do("DELETE", "/api/admin/users/"+ftoa(rootID), other, "").expect(t, 200, "")
	first.do("POST", "/api/auth/register", "", creds("ROOT", "their-password")).expect(t, 201, "")

	second := newService(t, func(cfg *service.Config) { cfg.DatabaseURL = first.dsn })
	second.login("ROOT", "their-password").expect(t, 403, "Account pending approval")
	second.login(adminName, adminPassword).expect(t, 401, "Invalid username or password")
	if n := countUsers(t, first.dsn, "root"); n != 1 {
		t.Fatalf("%d accounts named root", n)
	}

	// A demoted bootstrap admin stays demoted.
	third := newService(t, nil)
	root = third.adminToken()
	rootID = third.do("GET", "/api/auth/me", root, "").body["id"].(float64)
	otherID, _ = third.registerApproved("other", "password1")
	third.do("PUT", "/api/admin/users/"+ftoa(otherID)+"/role", root, `{"role":"admin"}`).expect(t, 200, "")
	third.do("PUT", "/api/admin/users/"+ftoa(rootID)+"/role", root, `{"role":"user"}`).expect(t, 200, "")
	fourth := newService(t, func(cfg *service.Config) { cfg.DatabaseURL = third.dsn })
	r := fourth.login(adminName, adminPassword)
	r.expect(t, 200, "")
	if r.body["user"].(map[string]any)["role"] != "user" {
		t.Fatalf("restart promoted the demoted account: %s", r.raw)
	}
}

func TestLogin_LockEndsWithItsWindow(t *testing.T) {
	c := newService(t, func(cfg *service.Config) { cfg.MaxFailures, cfg.LoginLockout = 2, time.Second })
	for range 2 {
		c.login(adminName, "wrong-password").expect(t, 401, "Invalid username or password")
	}
	r := c.login(adminName, adminPassword)
	r.expect(t, 429, "Too many failed login attempts, try again later")
	if s, _ := strconv.Atoi(r.header.Get("Retry-After")); s < 1 || s > 1 {
		t.Fatalf("Retry-After %q for a 1 s window", r.header.Get("Retry-After"))
	}
	time.Sleep(1100 * time.Millisecond)
	c.login(adminName, adminPassword).expect(t, 200, "")
}
