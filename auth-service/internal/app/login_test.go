package app_test

import (
	"context"
	"testing"
	"time"

	"limen/auth-service/internal/app"
	"limen/auth-service/internal/domain"
	"limen/libs/failure"
)

var clock = func() time.Time { return time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC) }

type loginFixture struct {
	login    app.LoginHandler
	hasher   *plainHasher
	throttle *fakeThrottle
	tokens   *fakeTokens
	users    *fakeUsers
}

func newLogin(t *testing.T, users ...*domain.User) loginFixture {
	t.Helper()
	f := loginFixture{hasher: &plainHasher{}, throttle: newFakeThrottle(), tokens: newFakeTokens(), users: newFakeUsers(users...)}
	login, err := app.NewLoginHandler(context.Background(), f.users, f.hasher, f.throttle,
		app.LoginPolicy{MaxPerAccountAndIP: 2, MaxPerAccount: 4, MaxPerIP: 3, Window: time.Minute},
		fakeAccess{}, f.tokens, time.Hour, clock)
	if err != nil {
		t.Fatal(err)
	}
	f.login = login
	return f
}

func approvedUser(name, password string) *domain.User {
	return domain.NewUser(name, "hash:"+password, true, clock())
}

func TestLogin_ValidCredentials_OpenASession(t *testing.T) {
	f := newLogin(t, approvedUser("ada", "password1"))
	s, err := f.login.Handle(context.Background(), app.Login{Username: "ada", Password: "password1", ClientIP: "10.0.0.1"})
	if err != nil || s.AccessToken != "access-for-ada" || s.RefreshToken == "" || len(f.tokens.saved) != 1 {
		t.Fatalf("%+v %v", s, err)
	}
}

func TestLogin_UnknownUser_CostsAPasswordCheck(t *testing.T) {
	f := newLogin(t)
	before := f.hasher.verified
	if _, err := f.login.Handle(context.Background(), app.Login{Username: "nobody", Password: "password1", ClientIP: "10.0.0.1"}); err != domain.ErrInvalidCredentials {
		t.Fatalf("got %v", err)
	}
	if f.hasher.verified != before+1 {
		t.Fatal("unknown username skipped the password check, which makes it faster than a wrong password")
	}
}

func TestLogin_UnapprovedUser_IsForbiddenOnlyWithTheRightPassword(t *testing.T) {
	f := newLogin(t, domain.NewUser("ada", "hash:password1", false, clock()))
	if _, err := f.login.Handle(context.Background(), app.Login{Username: "ada", Password: "wrong", ClientIP: "10.0.0.1"}); err != domain.ErrInvalidCredentials {
		t.Fatalf("wrong password: %v", err)
	}
	if _, err := f.login.Handle(context.Background(), app.Login{Username: "ada", Password: "password1", ClientIP: "10.0.0.1"}); err != domain.ErrPendingApproval {
		t.Fatalf("right password: %v", err)
	}
}

func TestLogin_RepeatedFailures_AreThrottledPerAccountAndAddress(t *testing.T) {
	f := newLogin(t, approvedUser("ada", "password1"))
	for range 2 {
		_, _ = f.login.Handle(context.Background(), app.Login{Username: "ada", Password: "wrong", ClientIP: "10.0.0.1"})
	}
	_, err := f.login.Handle(context.Background(), app.Login{Username: "ADA", Password: "password1", ClientIP: "10.0.0.1"})
	if failure.KindOf(err) != failure.TooManyRequests || err.(*failure.Error).RetryAfter <= 0 {
		t.Fatalf("got %v", err)
	}
	// The owner, elsewhere, is not locked out by whoever guessed from 10.0.0.1.
	if _, err := f.login.Handle(context.Background(), app.Login{Username: "ada", Password: "password1", ClientIP: "10.0.0.2"}); err != nil {
		t.Fatalf("owner from another address: %v", err)
	}
}

func TestLogin_FailuresFromManyAddresses_AreThrottledPerAccount(t *testing.T) {
	f := newLogin(t, approvedUser("ada", "password1"))
	for i := range 4 {
		_, _ = f.login.Handle(context.Background(), app.Login{Username: "ada", Password: "wrong", ClientIP: "10.0.1." + string(rune('1'+i))})
	}
	_, err := f.login.Handle(context.Background(), app.Login{Username: "ada", Password: "password1", ClientIP: "10.0.0.9"})
	if failure.KindOf(err) != failure.TooManyRequests {
		t.Fatalf("got %v", err)
	}
}

func TestLogin_Success_ClearsTheAccountAndAddressCounter(t *testing.T) {
	f := newLogin(t, approvedUser("ada", "password1"))
	_, _ = f.login.Handle(context.Background(), app.Login{Username: "ada", Password: "wrong", ClientIP: "10.0.0.1"})
	if _, err := f.login.Handle(context.Background(), app.Login{Username: "ada", Password: "password1", ClientIP: "10.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	if n := f.throttle.count("account-ip:ada|10.0.0.1"); n != 0 {
		t.Fatalf("account-and-address counter at %d after a successful login", n)
	}
	// The success itself is given back; the earlier failure still counts for the account and address.
	if a, ip := f.throttle.count("account:ada"), f.throttle.count("ip:10.0.0.1"); a != 1 || ip != 1 {
		t.Fatalf("account %d, address %d; want 1 and 1", a, ip)
	}
}

func TestRefresh_SpentTokenIsRefused(t *testing.T) {
	f := newLogin(t, approvedUser("ada", "password1"))
	s, err := f.login.Handle(context.Background(), app.Login{Username: "ada", Password: "password1", ClientIP: "10.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	refresh := app.NewRefreshHandler(f.users, fakeAccess{}, f.tokens, time.Hour, 0, clock)
	tab := app.Client{IP: "10.0.0.1", UserAgent: "browser"}
	next, err := refresh.Handle(context.Background(), app.Refresh{RefreshToken: s.RefreshToken, Client: tab})
	if err != nil || next.RefreshToken == s.RefreshToken {
		t.Fatalf("rotation: %+v %v", next, err)
	}
	if _, err := refresh.Handle(context.Background(), app.Refresh{RefreshToken: s.RefreshToken, Client: tab}); err != domain.ErrInvalidRefreshToken {
		t.Fatalf("reuse: %v", err)
	}
}

func TestRegister_ValidatesBeforeHashing(t *testing.T) {
	h := &plainHasher{}
	r := app.RegisterHandler{Users: newFakeUsers(), Hasher: h, Throttle: newFakeThrottle(), Policy: app.RegisterPolicy{MaxPerIP: 10, Window: time.Hour}, Now: clock}
	if _, err := r.Handle(context.Background(), app.Register{Username: "ab", Password: "password1", ClientIP: "10.0.0.1"}); failure.KindOf(err) != failure.Invalid {
		t.Fatalf("got %v", err)
	}
	u, err := r.Handle(context.Background(), app.Register{Username: "ada", Password: "password1", ClientIP: "10.0.0.1"})
	if err != nil || u.Approved || u.Role != domain.RoleUser {
		t.Fatalf("%+v %v", u, err)
	}
}
