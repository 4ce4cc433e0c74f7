package app

import (
	"context"

	"limen/auth-service/internal/domain"
)

// ChangeRole gives the account ID the role Role ("admin" or "user").
type ChangeRole struct {
	ID   int64
	Role string
}

// ChangeRoleHandler makes an account an admin or a plain user.
type ChangeRoleHandler struct {
	Users Users
	Now   Clock
}

func (h ChangeRoleHandler) Handle(ctx context.Context, cmd ChangeRole) (*domain.User, error) {
	role, err := domain.ParseRole(cmd.Role)
	if err != nil {
		return nil, err
	}
	now := h.Now()
	return h.Users.Update(ctx, cmd.ID, func(u *domain.User, admins domain.Admins) error {
		return u.SetRole(role, admins, now)
	})
}
