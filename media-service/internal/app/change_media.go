package app

import (
	"context"

	"limen/media-service/internal/domain"
)

// ChangeMedia attaches an ISO to a VM's CD-ROM drive or ejects it. Changes of one VM's drive are
// serialised (History holds the VM's lock on every replica), so concurrent requests apply one after
// the other and the drive ends as the last one said.
type ChangeMedia struct {
	VMs     VMs
	Library Library
	Drive   Drive
	History History
	Now     Clock
}

// Attach puts the named ISO into the drive and answers the VM's uuid and the ISO's library path.
func (uc ChangeMedia) Attach(ctx context.Context, caller Caller, ref, isoPath string) (domain.VM, string, error) {
	if isoPath == "" {
		return domain.VM{}, "", domain.ErrISOPathRequired
	}
	if err := domain.CheckRequestedPath(isoPath); err != nil {
		return domain.VM{}, "", err
	}
	vm, err := visibleVM(ctx, uc.VMs, caller, ref)
	if err != nil {
		return domain.VM{}, "", err
	}
	iso, err := uc.Library.Resolve(ctx, isoPath)
	if err != nil {
		return domain.VM{}, "", hypervisorError(err)
	}
	err = uc.History.Change(ctx, vm.UUID, func(ctx context.Context) (domain.Change, error) {
		if err := uc.Drive.Insert(ctx, vm.UUID, iso.Path); err != nil {
			return domain.Change{}, err
		}
		return domain.Change{VMUUID: vm.UUID, OwnerID: vm.OwnerID, ActorID: caller.UserID, Action: domain.ActionAttach,
			ISOPath: iso.Path, At: uc.Now()}, nil
	})
	return vm, iso.Path, hypervisorError(err)
}

// Detach empties the drive; an empty drive stays empty and the answer is the same.
func (uc ChangeMedia) Detach(ctx context.Context, caller Caller, ref string) (domain.VM, error) {
	vm, err := visibleVM(ctx, uc.VMs, caller, ref)
	if err != nil {
		return domain.VM{}, err
	}
	err = uc.History.Change(ctx, vm.UUID, func(ctx context.Context) (domain.Change, error) {
		ejected, err := uc.Drive.Media(ctx, vm.UUID)
		if err != nil {
			return domain.Change{}, err
		}
		if err := uc.Drive.Eject(ctx, vm.UUID); err != nil {
			return domain.Change{}, err
		}
		return domain.Change{VMUUID: vm.UUID, OwnerID: vm.OwnerID, ActorID: caller.UserID, Action: domain.ActionDetach,
			ISOPath: ejected, At: uc.Now()}, nil
	})
	return vm, hypervisorError(err)
}
