package app

import (
	"context"

	"limen/libs/failure"
	"limen/media-service/internal/domain"
)

// ChangeMedia asks for an attach of ISOPath (a library path or a bare name) to the drive of the VM
// Ref names (uuid or numeric id), or for its eject. Action is "attach" or "detach" as the caller sent
// it.
type ChangeMedia struct {
	Caller  Caller
	Ref     string
	Action  string
	ISOPath string
}

// ChangeMediaHandler attaches an ISO to a VM's CD-ROM drive or ejects it. Changes of one VM's drive
// are serialised (each holds a claim on the drive, on every replica), so concurrent requests apply
// one after the other and the drive ends as the last recorded change said. The hypervisor call runs
// with no database transaction or lock open: claim (short transaction), change the drive, then record
// the change and end the claim (short transaction).
type ChangeMediaHandler struct {
	VMs     VMs
	Library Library
	Drive   Drive
	Claims  Claims
	History History
	Now     Clock
}

// Handle answers what the drive holds after the change: the ISO's library path once attached,
// nothing once ejected (an empty drive stays empty and the answer is the same).
func (h ChangeMediaHandler) Handle(ctx context.Context, cmd ChangeMedia) (domain.Media, error) {
	action, err := domain.ParseAction(cmd.Action)
	if err != nil {
		return domain.Media{}, err
	}
	if action == domain.ActionDetach {
		return h.detach(ctx, cmd)
	}
	return h.attach(ctx, cmd)
}

func (h ChangeMediaHandler) attach(ctx context.Context, cmd ChangeMedia) (domain.Media, error) {
	if cmd.ISOPath == "" {
		return domain.Media{}, domain.ErrISOPathRequired
	}
	if err := domain.CheckRequestedPath(cmd.ISOPath); err != nil {
		return domain.Media{}, err
	}
	vm, err := visibleVM(ctx, h.VMs, cmd.Caller, cmd.Ref)
	if err != nil {
		return domain.Media{}, err
	}
	iso, err := h.Library.Resolve(ctx, cmd.ISOPath)
	if err != nil {
		return domain.Media{}, hypervisorError(err)
	}
	claim, err := h.Claims.ClaimDrive(ctx, vm.UUID, iso.Name)
	if err != nil {
		return domain.Media{}, hypervisorError(err)
	}
	// A deletion may have finished between the lookup and the claim; from now on none can start
	// until the claim ends, and by then the drive holds the image, which a deletion checks for.
	if iso, err = h.Library.Resolve(ctx, iso.Path); err != nil {
		h.release(ctx, claim)
		if failure.KindOf(err) == failure.NotFound {
			err = domain.ISONotFound(cmd.ISOPath)
		}
		return domain.Media{}, hypervisorError(err)
	}
	if err := h.Drive.Insert(ctx, vm.UUID, iso.Path); err != nil {
		h.release(ctx, claim)
		return domain.Media{}, hypervisorError(err)
	}
	err = h.History.Record(ctx, claim, domain.Change{VMUUID: vm.UUID, OwnerID: vm.OwnerID, ActorID: cmd.Caller.UserID,
		Action: domain.ActionAttach, ISOPath: iso.Path, At: h.Now()})
	return domain.Media{VMUUID: vm.UUID, Path: iso.Path, Attached: true}, err
}

func (h ChangeMediaHandler) detach(ctx context.Context, cmd ChangeMedia) (domain.Media, error) {
	vm, err := visibleVM(ctx, h.VMs, cmd.Caller, cmd.Ref)
	if err != nil {
		return domain.Media{}, err
	}
	claim, err := h.Claims.ClaimDrive(ctx, vm.UUID, "")
	if err != nil {
		return domain.Media{}, hypervisorError(err)
	}
	ejected, err := h.Drive.Media(ctx, vm.UUID)
	if err == nil {
		err = h.Drive.Eject(ctx, vm.UUID)
	}
	if err != nil {
		h.release(ctx, claim)
		return domain.Media{}, hypervisorError(err)
	}
	err = h.History.Record(ctx, claim, domain.Change{VMUUID: vm.UUID, OwnerID: vm.OwnerID, ActorID: cmd.Caller.UserID,
		Action: domain.ActionDetach, ISOPath: ejected, At: h.Now()})
	return domain.Media{VMUUID: vm.UUID}, err
}

// release ends a claim under which nothing changed. A failure is not the caller's: the claim expires
// on its own.
func (h ChangeMediaHandler) release(ctx context.Context, claim Claim) {
	_ = h.Claims.Release(ctx, claim)
}
