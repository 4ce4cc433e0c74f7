package app

import (
	"context"

	"limen/media-service/internal/domain"
)

// DeleteISO asks for the removal of the library's ISO called Name.
type DeleteISO struct {
	Name string
}

// DeleteISOHandler removes an image from the library (admin only), refused while any VM's drive
// holds it: the guest would lose its disc under it. The check and the removal run under a deletion
// claim on the ISO, which attaches of it wait for (and which waits for attaches of it in progress), so
// no attach can slip in between them on any replica.
type DeleteISOHandler struct {
	Library Library
	Drive   Drive
	Claims  Claims
}

func (h DeleteISOHandler) Handle(ctx context.Context, cmd DeleteISO) error {
	if err := domain.ValidateISOName(cmd.Name); err != nil {
		return domain.ISONotFound(cmd.Name)
	}
	iso, err := h.Library.Resolve(ctx, cmd.Name)
	if err != nil {
		return hypervisorError(err)
	}
	claim, err := h.Claims.ClaimDeletion(ctx, iso.Name)
	if err != nil {
		return hypervisorError(err)
	}
	defer func() { _ = h.Claims.Release(ctx, claim) }() // a failure leaves a claim that expires on its own
	holders, err := h.Drive.Holding(ctx, iso.Path)
	if err != nil {
		return hypervisorError(err)
	}
	if len(holders) > 0 {
		return domain.ISOInUse(iso.Name, len(holders))
	}
	return hypervisorError(h.Library.Delete(ctx, iso.Name))
}
