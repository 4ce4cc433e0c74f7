package app

import (
	"context"

	"limen/media-service/internal/domain"
)

// ChangeMedia attaches an ISO to a VM's CD-ROM drive or ejects it. Changes of one VM's drive are
// serialised (each holds a claim on the drive, on every replica), so concurrent requests apply one
// after the other and the drive ends as the last recorded change said. The hypervisor call runs with
// no database transaction or lock open: claim (short transaction), change the drive, then record the
// change and end the claim (short transaction).
type ChangeMedia struct {
	VMs     VMs
	Library Library
	Drive   Drive
	Claims  Claims
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
	claim, err := uc.Claims.ClaimDrive(ctx, vm.UUID, iso.Name)
	if err != nil {
		return domain.VM{}, "", hypervisorError(err)
	}
	// A deletion may have finished between the lookup and the claim; from now on none can start
	// until the claim ends, and by then the drive holds the image, which a deletion checks for.
	if iso, err = uc.Library.Resolve(ctx, iso.Path); err != nil {
		uc.release(ctx, claim)
		if domain.KindOf(err) == domain.KindNotFound {
			err = domain.ISONotFound(isoPath)
		}
		return domain.VM{}, "", hypervisorError(err)
	}
	if err := uc.Drive.Insert(ctx, vm.UUID, iso.Path); err != nil {
		uc.release(ctx, claim)
		return domain.VM{}, "", hypervisorError(err)
	}
	err = uc.History.Record(ctx, claim, domain.Change{VMUUID: vm.UUID, OwnerID: vm.OwnerID, ActorID: caller.UserID,
		Action: domain.ActionAttach, ISOPath: iso.Path, At: uc.Now()})
	return vm, iso.Path, err
}

// Detach empties the drive; an empty drive stays empty and the answer is the same.
func (uc ChangeMedia) Detach(ctx context.Context, caller Caller, ref string) (domain.VM, error) {
	vm, err := visibleVM(ctx, uc.VMs, caller, ref)
	if err != nil {
		return domain.VM{}, err
	}
	claim, err := uc.Claims.ClaimDrive(ctx, vm.UUID, "")
	if err != nil {
		return domain.VM{}, hypervisorError(err)
	}
	ejected, err := uc.Drive.Media(ctx, vm.UUID)
	if err == nil {
		err = uc.Drive.Eject(ctx, vm.UUID)
	}
	if err != nil {
		uc.release(ctx, claim)
		return domain.VM{}, hypervisorError(err)
	}
	err = uc.History.Record(ctx, claim, domain.Change{VMUUID: vm.UUID, OwnerID: vm.OwnerID, ActorID: caller.UserID,
		Action: domain.ActionDetach, ISOPath: ejected, At: uc.Now()})
	return vm, err
}

// release ends a claim under which nothing changed. A failure is not the caller's: the claim expires
// on its own.
func (uc ChangeMedia) release(ctx context.Context, claim Claim) { _ = uc.Claims.Release(ctx, claim) }
