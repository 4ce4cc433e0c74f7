package app

import (
	"context"
	"errors"

	"limen/libs/contract"
	"limen/media-service/internal/domain"
)

// GetMedia asks what the drive of the VM Ref names (uuid or numeric id) holds.
type GetMedia struct {
	Caller Caller
	Ref    string
}

// GetMediaHandler answers from the domain XML, which is the truth.
type GetMediaHandler struct {
	VMs   VMs
	Drive Drive
}

func (h GetMediaHandler) Handle(ctx context.Context, q GetMedia) (domain.Media, error) {
	vm, err := visibleVM(ctx, h.VMs, q.Caller, q.Ref)
	if err != nil {
		return domain.Media{}, err
	}
	path, err := h.Drive.Media(ctx, vm.UUID)
	if err != nil {
		return domain.Media{}, hypervisorError(err)
	}
	return domain.Media{VMUUID: vm.UUID, Path: path, Attached: path != ""}, nil
}

// visibleVM is the ownership gate: another user's VM is indistinguishable from a missing one.
func visibleVM(ctx context.Context, vms VMs, caller Caller, ref string) (domain.VM, error) {
	vm, err := vms.Lookup(ctx, ref)
	if err != nil {
		return domain.VM{}, err
	}
	if !vm.VisibleTo(caller.UserID, caller.Admin) {
		return domain.VM{}, domain.ErrVMNotFound
	}
	return vm, nil
}

// hypervisorError turns the drive's and library's typed failures into the caller's errors.
func hypervisorError(err error) error {
	switch {
	case errors.Is(err, contract.ErrHypervisorUnavailable):
		return domain.ErrHypervisorDown
	case errors.Is(err, contract.ErrMachineNotFound):
		return domain.ErrMachineMissing
	}
	return err
}
