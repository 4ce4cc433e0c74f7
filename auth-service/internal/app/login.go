package app

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"time"

	"limen/auth-service/internal/domain"
)

// LoginPolicy bounds login attempts within a window (LIMEN_LOGIN_LOCKOUT) with three counters:
//
//   - per account and client address (MaxPerAccountAndIP, LIMEN_LOGIN_MAX_FAILURES, 5): the tight
//     limit on guessing one account from one place;
//   - per account (MaxPerAccount, LIMEN_LOGIN_MAX_FAILURES_PER_ACCOUNT, 50): a looser brake on
//     guessing one account from many addresses;
//   - per client address (MaxPerIP, LIMEN_LOGIN_MAX_FAILURES_PER_IP, 20): one address trying many
//     accounts, known or not.
//
// Every attempt is counted against all three before its password is verified, in one atomic step
// (Throttle.Reserve: all or none, never beyond a limit), so there is no gap between checking a
// counter and recording a failure for parallel attempts to slip through: of N attempts at once, at
// most the smallest remaining allowance gets a password verdict, the rest 429. A wrong password
// keeps its count. A right one is no failure: its attempt is given back and the counter of that
// account and address is cleared, so an owner who mistyped is not held up. An attacker who knows a
// username therefore exhausts it only for the attacker's own addresses; the owner, logging in from
// elsewhere, is refused only once the per-account limit, several times the per-address one, is
// spent within the window.
type LoginPolicy struct {
	MaxPerAccountAndIP int
	MaxPerAccount      int
	MaxPerIP           int
	Window             time.Duration
}

// limits are the counters one attempt reserves; the first is the account-and-address one.
func (p LoginPolicy) limits(username, clientIP string) []Limit {
	account := accountKey(username)
	return []Limit{
		{Key: "account-ip:" + account + "|" + clientIP, Max: p.MaxPerAccountAndIP},
		{Key: "account:" + account, Max: p.MaxPerAccount},
		{Key: "ip:" + clientIP, Max: p.MaxPerIP},
	}
}

// accountKey is the name as accounts compare (case-insensitively); a name longer than any account's
// is hashed, so that counters stay small whatever is sent, and so is one with a NUL byte, which no
// account's name has and Postgres text cannot hold (the counter's key would fail the insert: 500).
func accountKey(username string) string {
	name := strings.ToLower(username)
	if len(name) > 64 || strings.ContainsRune(name, 0) {
		sum := sha256.Sum256([]byte(name))
		return "#" + hex.EncodeToString(sum[:])
	}
	return name
}

// Login asks for a session of the account named Username; ClientIP is the address failures are
// counted by.
type Login struct {
	Username string
	Password string
	ClientIP string
}

// LoginHandler checks credentials and opens a session.
type LoginHandler struct {
	Users    Users
	Hasher   PasswordHasher
	Throttle Throttle
	Policy   LoginPolicy
	sessions sessionIssuer
	// dummyHash is verified for unknown usernames so they cost as much as a wrong password.
	dummyHash string
	Now       Clock
}

// NewLoginHandler prepares the dummy hash once.
func NewLoginHandler(ctx context.Context, users Users, hasher PasswordHasher, throttle Throttle, policy LoginPolicy,
	access AccessTokens, refresh RefreshTokens, refreshTTL time.Duration, now Clock) (LoginHandler, error) {
	dummy, err := hasher.Hash(ctx, "limen-dummy-password-for-timing")
	if err != nil {
		return LoginHandler{}, err
	}
	return LoginHandler{Users: users, Hasher: hasher, Throttle: throttle, Policy: policy, dummyHash: dummy, Now: now,
		sessions: sessionIssuer{access: access, refresh: refresh, refreshTTL: refreshTTL}}, nil
}

func (h LoginHandler) Handle(ctx context.Context, cmd Login) (*domain.Session, error) {
	now := h.Now()
	limits := h.Policy.limits(cmd.Username, cmd.ClientIP)
	reserved, locked, err := h.Throttle.Reserve(ctx, limits, h.Policy.Window, now)
	if err != nil {
		return nil, err
	}
	if locked > 0 {
		return nil, domain.TooManyAttempts(locked)
	}
	// Giving an attempt back must happen even when the caller has gone meanwhile.
	release := context.WithoutCancel(ctx)
	u, err := h.check(ctx, cmd.Username, cmd.Password)
	switch {
	case errors.Is(err, domain.ErrInvalidCredentials):
		return nil, err // counted as a failure: the reservation stays
	case err != nil:
		// No verdict (no hashing slot, the caller gone, the database): the attempt is given back.
		_ = h.Throttle.Release(release, reserved, "")
		return nil, err
	}
	if err := h.Throttle.Release(release, reserved, limits[0].Key); err != nil {
		return nil, err
	}
	if !u.Approved {
		return nil, domain.ErrPendingApproval
	}
	return h.sessions.start(ctx, u, now)
}

// check verifies the password; an unknown username is verified against the dummy hash, so that it
// costs as much as a wrong password and cannot be told apart by timing.
func (h LoginHandler) check(ctx context.Context, username, password string) (*domain.User, error) {
	u, err := h.Users.ByUsername(ctx, username)
	hash := h.dummyHash
	switch {
	case err == nil:
		hash = u.PasswordHash
	case !errors.Is(err, domain.ErrUserNotFound):
		return nil, err
	}
	ok, err := h.Hasher.Verify(ctx, password, hash)
	if err != nil {
		return nil, err
	}
	if u == nil || !ok {
		return nil, domain.ErrInvalidCredentials
	}
	return u, nil
}
