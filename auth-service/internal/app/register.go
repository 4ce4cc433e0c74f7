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

// Register asks for an account; ClientIP is the address registrations are counted by.
type Register struct {
	Username string
	Password string
	ClientIP string
}

// RegisterHandler creates an account, approved only when the service auto-approves.
type RegisterHandler struct {
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
func (h RegisterHandler) Handle(ctx context.Context, cmd Register) (*domain.User, error) {
	if err := domain.ValidateUsername(cmd.Username); err != nil {
		return nil, err
	}
	if err := domain.ValidatePassword(cmd.Password); err != nil {
		return nil, err
	}
	reserved, locked, err := h.Throttle.Reserve(ctx, []Limit{{Key: "register-ip:" + cmd.ClientIP, Max: h.Policy.MaxPerIP}}, h.Policy.Window, h.Now())
	if err != nil {
		return nil, err
	}
	if locked > 0 {
		return nil, domain.TooManyRegistrations(locked)
	}
	u, err := h.create(ctx, cmd.Username, cmd.Password)
	if err != nil && !errors.Is(err, domain.ErrUsernameTaken) {
		_ = h.Throttle.Release(context.WithoutCancel(ctx), reserved, "")
	}
	return u, err
}

func (h RegisterHandler) create(ctx context.Context, username, password string) (*domain.User, error) {
	hash, err := h.Hasher.Hash(ctx, password)
	if err != nil {
		return nil, err
	}
	// Waiting for a slot and hashing take long enough for the caller to give up (the gateway's
	// timeout); an account nobody will hear of must not appear.
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	u := domain.NewUser(username, hash, h.AutoApprove, h.Now())
	if err := h.Users.Create(ctx, u); err != nil {
		return nil, err
	}
	return u, nil
}
