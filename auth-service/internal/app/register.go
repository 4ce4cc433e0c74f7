package app

import (
	"context"
	"errors"
	"time"

	"limen/auth-service/internal/domain"
)

// RegisterPolicy bounds registrations per client address (LIMEN_REGISTER_MAX_PER_IP) within a
// window (LIMEN_REGISTER_WINDOW).
type RegisterPolicy struct {
	MaxPerIP int
	Window   time.Duration
}

// Register creates an account, approved only when the service auto-approves.
type Register struct {
	Users       Users
	Hasher      PasswordHasher
	Throttle    Throttle
	Policy      RegisterPolicy
	AutoApprove bool
	Now         Clock
}

// Handle validates, then reserves an attempt for the client address the way logins do (atomically,
// before hashing: see LoginPolicy), so a burst from one address creates at most MaxPerIP accounts
// and hashes at most MaxPerIP passwords per window. An attempt that ends with an account or with
// "Username already exists" stays counted; one that got no answer (no hashing slot, the caller gone)
// is given back.
func (r Register) Handle(ctx context.Context, username, password, clientIP string) (*domain.User, error) {
	if err := domain.ValidateUsername(username); err != nil {
		return nil, err
	}
	if err := domain.ValidatePassword(password); err != nil {
		return nil, err
	}
	reserved, locked, err := r.Throttle.Reserve(ctx, []Limit{{Key: "register-ip:" + clientIP, Max: r.Policy.MaxPerIP}}, r.Policy.Window, r.Now())
	if err != nil {
		return nil, err
	}
	if locked > 0 {
		return nil, domain.TooManyRegistrations(locked)
	}
	u, err := r.create(ctx, username, password)
	if err != nil && !errors.Is(err, domain.ErrUsernameTaken) {
		_ = r.Throttle.Release(context.WithoutCancel(ctx), reserved, "")
	}
	return u, err
}

func (r Register) create(ctx context.Context, username, password string) (*domain.User, error) {
	hash, err := r.Hasher.Hash(ctx, password)
	if err != nil {
		return nil, err
	}
	// Waiting for a slot and hashing take long enough for the caller to give up (the gateway's
	// timeout); an account nobody will hear of must not appear.
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	u := domain.NewUser(username, hash, r.AutoApprove, r.Now())
	if err := r.Users.Create(ctx, u); err != nil {
		return nil, err
	}
	return u, nil
}
