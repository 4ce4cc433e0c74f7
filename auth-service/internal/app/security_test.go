package app_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"limen/auth-service/internal/app"
	"limen/auth-service/internal/domain"
	"limen/libs/failure"
)

func TestLogin_ParallelWrongPasswords_GetNoMoreVerdictsThanTheLimit(t *testing.T) {
	f := newLogin(t, approvedUser("ada", "password1")) // 2 per account and address
	errs := make([]error, 60)
	var wg sync.WaitGroup
	for i := range errs {
		wg.Go(func() {
			_, errs[i] = f.login.Handle(context.Background(), app.Login{Username: "ada", Password: "wrong", ClientIP: "10.0.0.1"})
		})
	}
	wg.Wait()
	denied, throttled := 0, 0
	for _, err := range errs {
		switch {
		case err == domain.ErrInvalidCredentials:
			denied++
		case failure.KindOf(err) == failure.TooManyRequests:
			throttled++
		default:
			t.Fatalf("unexpected %v", err)
		}
	}
	if denied != 2 || throttled != 58 || f.hasher.verified != 2 {
		t.Fatalf("%d denied, %d throttled, %d verified; want 2, 58, 2", denied, throttled, f.hasher.verified)
	}
}

// failingHasher answers every call with err.
type failingHasher struct{ err error }

func (h failingHasher) Hash(context.Context, string) (string, error) { return "", h.err }
func (h failingHasher) Verify(context.Context, string, string) (bool, error) {
	return false, h.err
}

func TestLogin_WithoutAVerdict_TheAttemptIsGivenBack(t *testing.T) {
	f := newLogin(t, approvedUser("ada", "password1"))
	f.login.Hasher = failingHasher{domain.ErrBusy}
	for range 5 {
		if _, err := f.login.Handle(context.Background(), app.Login{Username: "ada", Password: "wrong", ClientIP: "10.0.0.1"}); err != domain.ErrBusy {
			t.Fatalf("got %v", err)
		}
	}
	for _, key := range []string{"account-ip:ada|10.0.0.1", "account:ada", "ip:10.0.0.1"} {
		if n := f.throttle.count(key); n != 0 {
			t.Fatalf("%s at %d after attempts that got no verdict", key, n)
		}
	}
}

func newRegister(users *fakeUsers, hasher app.PasswordHasher) app.RegisterHandler {
	return app.RegisterHandler{Users: users, Hasher: hasher, Throttle: newFakeThrottle(),
		Policy: app.RegisterPolicy{MaxPerIP: 2, Window: time.Hour}, Now: clock}
}

func TestRegister_IsLimitedPerAddress(t *testing.T) {
	users := newFakeUsers()
	r := newRegister(users, &plainHasher{})
	// Refused input costs nothing and is not counted.
	if _, err := r.Handle(context.Background(), app.Register{Username: "x", Password: "password1", ClientIP: "10.0.0.1"}); failure.KindOf(err) != failure.Invalid {
		t.Fatalf("got %v", err)
	}
	for _, name := range []string{"ada", "ADA"} { // a taken name counts: it answered something
		_, _ = r.Handle(context.Background(), app.Register{Username: name, Password: "password1", ClientIP: "10.0.0.1"})
	}
	_, err := r.Handle(context.Background(), app.Register{Username: "grace", Password: "password1", ClientIP: "10.0.0.1"})
	if failure.KindOf(err) != failure.TooManyRequests || err.(*failure.Error).RetryAfter <= 0 {
		t.Fatalf("third registration from one address: %v", err)
	}
	if _, err := r.Handle(context.Background(), app.Register{Username: "grace", Password: "password1", ClientIP: "10.0.0.2"}); err != nil {
		t.Fatalf("another address: %v", err)
	}
}

// cancellingHasher hashes while its caller gives up, as a gateway timeout does.
type cancellingHasher struct {
	plainHasher
	cancel context.CancelFunc
}

func (h *cancellingHasher) Hash(ctx context.Context, p string) (string, error) {
	h.cancel()
	return h.plainHasher.Hash(ctx, p)
}

func TestRegister_CallerGoneDuringHashing_CreatesNoAccount(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	users := newFakeUsers()
	r := newRegister(users, &cancellingHasher{cancel: cancel})
	if _, err := r.Handle(ctx, app.Register{Username: "ada", Password: "password1", ClientIP: "10.0.0.1"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
	if _, err := users.ByUsername(context.Background(), "ada"); err != domain.ErrUserNotFound {
		t.Fatalf("an account was created for a caller that had gone: %v", err)
	}
	if n := r.Throttle.(*fakeThrottle).count("register-ip:10.0.0.1"); n != 0 {
		t.Fatalf("the unanswered attempt still counts: %d", n)
	}
}

func TestRegister_NoHashingSlot_CreatesNoAccount(t *testing.T) {
	users := newFakeUsers()
	r := newRegister(users, failingHasher{domain.ErrBusy})
	if _, err := r.Handle(context.Background(), app.Register{Username: "ada", Password: "password1", ClientIP: "10.0.0.1"}); err != domain.ErrBusy {
		t.Fatalf("got %v", err)
	}
	if _, err := users.ByUsername(context.Background(), "ada"); err != domain.ErrUserNotFound {
		t.Fatalf("got %v", err)
	}
}

func ensureAdmin(t *testing.T, users *fakeUsers, name, password string) app.EnsureAdminResult {
	t.Helper()
	r, err := (app.EnsureAdminHandler{Users: users, Hasher: &plainHasher{}, Now: clock}).Handle(context.Background(), app.EnsureAdmin{Username: name, Password: password})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestEnsureAdmin_CreatesTheAdminWhenTheNameIsFree(t *testing.T) {
	users := newFakeUsers()
	if r := ensureAdmin(t, users, "root", "root-password"); !r.Created || !r.User.IsActiveAdmin() {
		t.Fatalf("%+v", r)
	}
	u, _ := users.ByUsername(context.Background(), "root")
	if !u.IsActiveAdmin() || u.PasswordHash != "hash:root-password" {
		t.Fatalf("%+v", u)
	}
	// The next start finds it and changes nothing.
	if r := ensureAdmin(t, users, "root", "changed-password"); r.Created || r.User.PasswordHash != "hash:root-password" {
		t.Fatalf("%+v", r)
	}
}

func TestEnsureAdmin_LeavesADemotedAccountAsItIs(t *testing.T) {
	demoted := domain.NewUser("root", "hash:old-password", true, clock()) // an admin made it a plain user
	users := newFakeUsers(demoted, domain.NewUser("other", "hash:x", true, clock()))
	before, _ := users.ByUsername(context.Background(), "root")
	for range 2 { // two restarts
		if r := ensureAdmin(t, users, "root", "new-password"); r.Created || r.User.ID != before.ID {
			t.Fatalf("%+v", r)
		}
	}
	after, _ := users.ByUsername(context.Background(), "root")
	if *after != *before {
		t.Fatalf("changed by a restart:\n%+v\n%+v", before, after)
	}
}

func TestEnsureAdmin_LeavesANameRegisteredInAnotherCaseAsItIs(t *testing.T) {
	// The bootstrap "admin" was deleted, and somebody registered "Admin" before the restart.
	users := newFakeUsers(domain.NewUser("Admin", "hash:their-password", false, clock()))
	before, _ := users.ByUsername(context.Background(), "Admin")
	r := ensureAdmin(t, users, "admin", "admin-password")
	if r.Created || r.User.Username != "Admin" {
		t.Fatalf("%+v", r)
	}
	after, _ := users.ByUsername(context.Background(), "admin")
	if *after != *before || after.IsActiveAdmin() || len(users.users) != 1 {
		t.Fatalf("changed by a restart: %+v (%d accounts)", after, len(users.users))
	}
}

type refreshFixture struct {
	refresh app.RefreshHandler
	now     time.Time
	first   string
}

func newRefreshFixture(t *testing.T) *refreshFixture {
	t.Helper()
	f := newLogin(t, approvedUser("ada", "password1"))
	s, err := f.login.Handle(context.Background(), app.Login{Username: "ada", Password: "password1", ClientIP: "10.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	rf := &refreshFixture{now: clock(), first: s.RefreshToken}
	rf.refresh = app.NewRefreshHandler(f.users, fakeAccess{}, f.tokens, time.Hour, 10*time.Second, func() time.Time { return rf.now })
	return rf
}

var tab = app.Client{IP: "10.0.0.1", UserAgent: "Firefox"}

func TestRefresh_ReuseBySameClientWithinTheGrace_KeepsTheLogin(t *testing.T) {
	f := newRefreshFixture(t)
	one, err := f.refresh.Handle(context.Background(), app.Refresh{RefreshToken: f.first, Client: tab})
	if err != nil {
		t.Fatal(err)
	}
	f.now = f.now.Add(9 * time.Second)
	two, err := f.refresh.Handle(context.Background(), app.Refresh{RefreshToken: f.first, Client: tab})
	if err != nil || two.RefreshToken == one.RefreshToken {
		t.Fatalf("second tab: %+v %v", two, err)
	}
	for _, s := range []*domain.Session{one, two} { // both tabs carry on
		if _, err := f.refresh.Handle(context.Background(), app.Refresh{RefreshToken: s.RefreshToken, Client: tab}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRefresh_ReuseAfterTheGraceOrByAnotherClient_EndsTheLogin(t *testing.T) {
	for name, reuse := range map[string]func(*refreshFixture) app.Client{
		"after the grace": func(f *refreshFixture) app.Client { f.now = f.now.Add(10 * time.Second); return tab },
		"other agent":     func(*refreshFixture) app.Client { return app.Client{IP: tab.IP, UserAgent: "curl"} },
		"other address":   func(*refreshFixture) app.Client { return app.Client{IP: "10.0.0.2", UserAgent: tab.UserAgent} },
	} {
		t.Run(name, func(t *testing.T) {
			f := newRefreshFixture(t)
			next, err := f.refresh.Handle(context.Background(), app.Refresh{RefreshToken: f.first, Client: tab})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.refresh.Handle(context.Background(), app.Refresh{RefreshToken: f.first, Client: reuse(f)}); err != domain.ErrInvalidRefreshToken {
				t.Fatalf("reuse: %v", err)
			}
			if _, err := f.refresh.Handle(context.Background(), app.Refresh{RefreshToken: next.RefreshToken, Client: tab}); err != domain.ErrInvalidRefreshToken {
				t.Fatalf("the family survived the reuse: %v", err)
			}
		})
	}
}
