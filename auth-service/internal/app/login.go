package app

import (
	"context"
	"errors"
	"strings"
	"time"

	"limen/auth-service/internal/domain"
)

// LoginPolicy bounds failed logins per account and per client address within a window.
type LoginPolicy struct {
	MaxPerAccount int
	MaxPerIP      int
	Window        time.Duration
}

// Login checks credentials and opens a session.
type Login struct {
	Users    Users
	Hasher   PasswordHasher
	Throttle LoginThrottle
	Policy   LoginPolicy
	sessions sessionIssuer
	// dummyHash is verified for unknown usernames so they cost as much as a wrong password.
	dummyHash string
	Now       Clock
}

// NewLogin prepares the dummy hash once.
func NewLogin(users Users, hasher PasswordHasher, throttle LoginThrottle, policy LoginPolicy,
	access AccessTokens, refresh RefreshTokens, refreshTTL time.Duration, now Clock) (*Login, error) {
	dummy, err := hasher.Hash("limen-dummy-password-for-timing")
	if err != nil {
		return nil, err
	}
	return &Login{Users: users, Hasher: hasher, Throttle: throttle, Policy: policy, dummyHash: dummy, Now: now,
		sessions: sessionIssuer{access: access, refresh: refresh, refreshTTL: refreshTTL}}, nil
}

func (l *Login) Handle(ctx context.Context, username, password, clientIP string) (*domain.Session, error) {
	now := l.Now()
	accountKey := "account:" + strings.ToLower(username)
	limits := []LoginLimit{{Key: accountKey, Max: l.Policy.MaxPerAccount}, {Key: "ip:" + clientIP, Max: l.Policy.MaxPerIP}}
	locked, err := l.Throttle.LockedFor(ctx, limits, l.Policy.Window, now)
	if err != nil {
		return nil, err
	}
	if locked > 0 {
		return nil, domain.TooManyAttempts(locked)
	}

	u, err := l.Users.ByUsername(ctx, username)
	hash := l.dummyHash
	switch {
	case err == nil:
		hash = u.PasswordHash
	case !errors.Is(err, domain.ErrUserNotFound):
		return nil, err
	}
	ok, verr := l.Hasher.Verify(password, hash)
	if verr != nil {
		return nil, verr
	}
	if u == nil || !ok {
		if err := l.Throttle.RecordFailure(ctx, limits, l.Policy.Window, now); err != nil {
			return nil, err
		}
		return nil, domain.ErrInvalidCredentials
	}
	if err := l.Throttle.Reset(ctx, accountKey); err != nil {
		return nil, err
	}
	if !u.Approved {
		return nil, domain.ErrPendingApproval
	}
	return l.sessions.start(ctx, u, now)
}
