package app

import (
	"context"
	"errors"
	"log/slog"

	"limen/vm-service/internal/domain"
)

// DeleteOwnedVMs removes every VM of a user who was deleted: no VM outlives its owner, including one
// created while the deletion was being decided.
type DeleteOwnedVMs struct {
	Repo   Repository
	Delete DeleteVM
	Log    *slog.Logger
}

func (uc DeleteOwnedVMs) Handle(ctx context.Context, ownerID int64) error {
	vms, err := uc.Repo.List(ctx, ownerID)
	if err != nil {
		return err
	}
	var errs []error
	for _, vm := range vms {
		_, err := uc.Delete.Handle(ctx, Caller{Admin: true}, domain.ByUUID(vm.UUID))
		if err != nil && !errors.Is(err, domain.ErrVMNotFound) {
			errs = append(errs, err)
			continue
		}
		uc.Log.Info("deleted the VM of a deleted user", "vm", vm.UUID, "owner_id", ownerID)
	}
	return errors.Join(errs...)
}
