package app

import (
	"context"

	"limen/auth-service/internal/domain"
)

// ApproveUser approves (Approved) or suspends the account ID.
type ApproveUser struct {
	ID       int64
	Approved bool
}

// ApproveUserHandler approves or suspends an account; suspending ends its logins.
type ApproveUserHandler struct {
	Users  Users
	Tokens RefreshTokens
	Now    Clock
}

func (h ApproveUserHandler) Handle(ctx context.Context, cmd ApproveUser) (*domain.User, error) {
	now := h.Now()
	u, err := h.Users.Update(ctx, cmd.ID, func(u *domain.User, admins domain.Admins) error {
		return u.SetApproved(cmd.Approved, admins, now)
	})
	if err != nil {
		return nil, err
	}
	if !cmd.Approved {
		if err := h.Tokens.RevokeUser(ctx, cmd.ID, now); err != nil {
			return nil, err
		}
	}
	return u, nil
}
