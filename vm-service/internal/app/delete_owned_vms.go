package app

import (
	"context"
	"errors"
	"log/slog"

	"limen/vm-service/internal/domain"
)

// DeleteOwnedVMs asks to remove every VM of a user who was deleted.
type DeleteOwnedVMs struct {
	OwnerID int64
}

// DeleteOwnedVMsHandler deletes them one by one as an admin would: no VM outlives its owner,
// including one created while the deletion was being decided.
type DeleteOwnedVMsHandler struct {
	Repo   Repository
	Delete DeleteVMHandler
	Log    *slog.Logger
}

func (uc DeleteOwnedVMsHandler) Handle(ctx context.Context, cmd DeleteOwnedVMs) error {
	vms, err := uc.Repo.List(ctx, cmd.OwnerID)
	if err != nil {
		return err
	}
	var errs []error
	for _, vm := range vms {
		_, err := uc.Delete.Handle(ctx, DeleteVM{Caller: Caller{Admin: true}, Ref: domain.ByUUID(vm.UUID)})
		if err != nil && !errors.Is(err, domain.ErrVMNotFound) {
			errs = append(errs, err)
			continue
		}
		uc.Log.Info("deleted the VM of a deleted user", "vm", vm.UUID, "owner_id", cmd.OwnerID)
	}
	return errors.Join(errs...)
}
