package app

import (
	"context"

	"limen/auth-service/internal/domain"
)

// ApproveUser approves or suspends an account; suspending ends its logins.
type ApproveUser struct {
	Users  Users
	Tokens RefreshTokens
	Now    Clock
}

func (c ApproveUser) Handle(ctx context.Context, id int64, approved bool) (*domain.User, error) {
	now := c.Now()
	u, err := c.Users.Update(ctx, id, func(u *domain.User, admins domain.Admins) error {
		return u.SetApproved(approved, admins, now)
	})
	if err != nil {
		return nil, err
	}
	if !approved {
		if err := c.Tokens.RevokeUser(ctx, id, now); err != nil {
			return nil, err
		}
	}
	return u, nil
}
