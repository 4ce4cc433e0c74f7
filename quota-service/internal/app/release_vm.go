package app

import (
	"context"

	"limen/quota-service/internal/domain"
)

// ReleaseVM says that a VM was deleted.
type ReleaseVM struct {
	VMUUID string
	UserID int64
}

// ReleaseVMHandler frees what the VM took and what is still reserved for it.
type ReleaseVMHandler struct {
	VMs VMs
}

func (h ReleaseVMHandler) Handle(ctx context.Context, cmd ReleaseVM) error {
	vm, err := domain.ParseVMUUID(cmd.VMUUID)
	if err != nil {
		return err
	}
	if err := domain.ValidUserID(cmd.UserID); err != nil {
		return err
	}
	return h.VMs.RemoveVM(ctx, vm, cmd.UserID)
}
