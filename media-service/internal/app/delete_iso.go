package app

import (
	"context"

	"limen/media-service/internal/domain"
)

// DeleteISO removes an image from the library (admin only), refused while any VM's drive holds it:
// the guest would lose its disc under it. The check and the removal run under a deletion claim on
// the ISO, which attaches of it wait for (and which waits for attaches of it in progress), so no
// attach can slip in between them on any replica.
type DeleteISO struct {
	Library Library
	Drive   Drive
	Claims  Claims
}

func (uc DeleteISO) Handle(ctx context.Context, name string) error {
	if err := domain.ValidateISOName(name); err != nil {
		return domain.ISONotFound(name)
	}
	iso, err := uc.Library.Resolve(ctx, name)
	if err != nil {
		return hypervisorError(err)
	}
	claim, err := uc.Claims.ClaimDeletion(ctx, iso.Name)
	if err != nil {
		return hypervisorError(err)
	}
	defer func() { _ = uc.Claims.Release(ctx, claim) }() // a failure leaves a claim that expires on its own
	holders, err := uc.Drive.Holding(ctx, iso.Path)
	if err != nil {
		return hypervisorError(err)
	}
	if len(holders) > 0 {
		return domain.ISOInUse(iso.Name, len(holders))
	}
	return hypervisorError(uc.Library.Delete(ctx, iso.Name))
}
