package app

import (
	"context"

	"limen/auth-service/internal/domain"
)

// ChangeRole makes an account an admin or a plain user.
type ChangeRole struct {
	Users Users
	Now   Clock
}

func (c ChangeRole) Handle(ctx context.Context, id int64, role string) (*domain.User, error) {
	r, err := domain.ParseRole(role)
	if err != nil {
		return nil, err
	}
	now := c.Now()
	return c.Users.Update(ctx, id, func(u *domain.User, admins domain.Admins) error {
		return u.SetRole(r, admins, now)
	})
}
