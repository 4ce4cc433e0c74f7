package app

import (
	"context"

	"limen/auth-service/internal/domain"
)

// DeleteUser removes an account (its refresh tokens go with it), never oneself or the last admin.
type DeleteUser struct {
	Users Users
}

func (c DeleteUser) Handle(ctx context.Context, caller Caller, id int64) error {
	return c.Users.Delete(ctx, id, func(u *domain.User, admins domain.Admins) error {
		return u.CheckDeletableBy(caller.UserID, admins)
	})
}
