package app

import (
	"context"

	"limen/auth-service/internal/domain"
)

// DeleteUser is Caller deleting the account ID, and its VMs with it when WithVMs.
type DeleteUser struct {
	Caller  Caller
	ID      int64
	WithVMs bool
}

// DeleteUserHandler removes an account (its refresh tokens go with it), never oneself or the last
// admin, and not one that owns VMs unless WithVMs: then vm-service deletes them when it reads the
// deletion.
type DeleteUserHandler struct {
	Users Users
	VMs   OwnedVMs
}

// OwnedVMs counts the VMs a user owns (vm-service).
type OwnedVMs interface {
	// CountOwnedBy fails with domain.ErrVMServiceDown when the count cannot be had.
	CountOwnedBy(ctx context.Context, userID int64) (int, error)
}

func (h DeleteUserHandler) Handle(ctx context.Context, cmd DeleteUser) error {
	if !cmd.WithVMs && h.VMs != nil {
		n, err := h.VMs.CountOwnedBy(ctx, cmd.ID)
		if err != nil {
			return err
		}
		if n > 0 {
			return domain.OwnsVMs(n)
		}
	}
	return h.Users.Delete(ctx, cmd.ID, cmd.WithVMs, func(u *domain.User, admins domain.Admins) error {
		return u.CheckDeletableBy(cmd.Caller.UserID, admins)
	})
}
