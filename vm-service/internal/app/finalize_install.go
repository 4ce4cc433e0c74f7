package app

import (
	"context"

	"limen/vm-service/internal/domain"
)

// FinalizeInstall asks to end a VM's installation: its installer leaves the CD-ROM drive and it boots
// from its disk from now on.
type FinalizeInstall struct {
	Caller Caller
	Ref    domain.Ref
}

// FinalizeInstallHandler has media-service eject the drive (media-service owns it, so its history and
// its media event tell of the eject as of any other), then sets the boot order to the disk alone,
// under one task claim. Media-service out of reach: nothing changes.
type FinalizeInstallHandler struct {
	Boot  SetBootOrderHandler
	Media Media
}

func (uc FinalizeInstallHandler) Handle(ctx context.Context, cmd FinalizeInstall) (*domain.VM, error) {
	return uc.Boot.set(ctx, cmd.Caller, cmd.Ref, domain.ActionFinalizeInstall, uc.Media.Eject, domain.BootHD)
}
