package app

import (
	"context"
	"errors"

	"limen/auth-service/internal/domain"
)

// EnsureAdmin makes sure the bootstrap admin exists, approved and with the admin role. An existing
// account keeps its password: the operator may have changed it since the first start.
type EnsureAdmin struct {
	Users  Users
	Hasher PasswordHasher
	Now    Clock
}

func (c EnsureAdmin) Handle(ctx context.Context, username, password string) error {
	now := c.Now()
	existing, err := c.Users.ByUsername(ctx, username)
	if errors.Is(err, domain.ErrUserNotFound) {
		if err := domain.ValidateUsername(username); err != nil {
			return err
		}
		if err := domain.ValidatePassword(password); err != nil {
			return err
		}
		hash, err := c.Hasher.Hash(password)
		if err != nil {
			return err
		}
		u := domain.NewUser(username, hash, true, now)
		u.Role = domain.RoleAdmin
		if err := c.Users.Create(ctx, u); !errors.Is(err, domain.ErrUsernameTaken) {
			return err // a replica that started at the same moment created it: fall through to promote
		}
		existing, err = c.Users.ByUsername(ctx, username)
		if err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	_, err = c.Users.Update(ctx, existing.ID, func(u *domain.User, admins domain.Admins) error {
		if err := u.SetRole(domain.RoleAdmin, admins, now); err != nil {
			return err
		}
		return u.SetApproved(true, admins, now)
	})
	return err
}
