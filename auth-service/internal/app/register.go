package app

import (
	"context"

	"limen/auth-service/internal/domain"
)

// Register creates an account, approved only when the service auto-approves.
type Register struct {
	Users       Users
	Hasher      PasswordHasher
	AutoApprove bool
	Now         Clock
}

func (r Register) Handle(ctx context.Context, username, password string) (*domain.User, error) {
	if err := domain.ValidateUsername(username); err != nil {
		return nil, err
	}
	if err := domain.ValidatePassword(password); err != nil {
		return nil, err
	}
	hash, err := r.Hasher.Hash(password)
	if err != nil {
		return nil, err
	}
	u := domain.NewUser(username, hash, r.AutoApprove, r.Now())
	if err := r.Users.Create(ctx, u); err != nil {
		return nil, err
	}
	return u, nil
}
