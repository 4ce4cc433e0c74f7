package app

import (
	"context"

	"limen/quota-service/internal/domain"
)

// ApplyVMEvent is one VM event read from vm-service's topic: the VM as written (Deleted false), or
// gone.
type ApplyVMEvent struct {
	VM      domain.VMState
	Deleted bool
}

// ApplyVMEventHandler makes usage follow the VMs that exist, whatever direct calls were lost: a VM
// that exists counts (and settles its create reservation), a VM that is gone frees its usage. Events
// of a deleted user's VMs remove what is left of that user instead of counting anything again.
type ApplyVMEventHandler struct {
	VMs        VMs
	Deletions  Deletions
	ForgetUser ForgetUserHandler
}

func (h ApplyVMEventHandler) Handle(ctx context.Context, cmd ApplyVMEvent) error {
	if h.Deletions.Deleted(cmd.VM.OwnerID) {
		return h.ForgetUser.Handle(ctx, ForgetUser{UserID: cmd.VM.OwnerID})
	}
	if cmd.Deleted {
		return h.VMs.RemoveVM(ctx, cmd.VM.UUID, cmd.VM.OwnerID)
	}
	return h.VMs.ApplyVM(ctx, cmd.VM)
}
