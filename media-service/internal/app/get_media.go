package app

import (
	"context"
	"errors"

	"limen/media-service/internal/domain"
)

// GetMedia answers GET /api/vms/{uuid}/media from the domain XML, which is the truth.
type GetMedia struct {
	VMs   VMs
	Drive Drive
}

func (uc GetMedia) Handle(ctx context.Context, caller Caller, ref string) (domain.Media, error) {
	vm, err := visibleVM(ctx, uc.VMs, caller, ref)
	if err != nil {
		return domain.Media{}, err
	}
	path, err := uc.Drive.Media(ctx, vm.UUID)
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
	case errors.Is(err, ErrHypervisorUnavailable):
		return domain.ErrHypervisorDown
	case errors.Is(err, ErrMachineNotFound):
		return domain.ErrMachineMissing
	}
	return err
}
