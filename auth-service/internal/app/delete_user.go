package app

import (
	"context"

	"limen/auth-service/internal/domain"
)

// DeleteUser removes an account (its refresh tokens go with it), never oneself or the last admin,
// and not one that owns VMs unless withVMs: then vm-service deletes them when it reads the deletion.
type DeleteUser struct {
	Users Users
	VMs   OwnedVMs
}

// OwnedVMs counts the VMs a user owns (vm-service).
type OwnedVMs interface {
	// CountOwnedBy fails with domain.ErrVMServiceDown when the count cannot be had.
	CountOwnedBy(ctx context.Context, userID int64) (int, error)
}

func (c DeleteUser) Handle(ctx context.Context, caller Caller, id int64, withVMs bool) error {
	if !withVMs && c.VMs != nil {
		n, err := c.VMs.CountOwnedBy(ctx, id)
		if err != nil {
			return err
		}
		if n > 0 {
			return domain.OwnsVMs(n)
		}
	}
	return c.Users.Delete(ctx, id, withVMs, func(u *domain.User, admins domain.Admins) error {
		return u.CheckDeletableBy(caller.UserID, admins)
	})
}
