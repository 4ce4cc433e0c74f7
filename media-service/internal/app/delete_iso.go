package app

import (
	"context"

	"limen/media-service/internal/domain"
)

// DeleteISO removes an image from the library (admin only), refused while any VM's drive holds it:
// the guest would lose its disc under it.
type DeleteISO struct {
	Library Library
	Drive   Drive
}

func (uc DeleteISO) Handle(ctx context.Context, name string) error {
	if err := domain.ValidateISOName(name); err != nil {
		return domain.ISONotFound(name)
	}
	iso, err := uc.Library.Resolve(ctx, name)
	if err != nil {
		return hypervisorError(err)
	}
	holders, err := uc.Drive.Holding(ctx, iso.Path)
	if err != nil {
		return hypervisorError(err)
	}
	if len(holders) > 0 {
		return domain.ISOInUse(iso.Name, len(holders))
	}
	return hypervisorError(uc.Library.Delete(ctx, iso.Name))
}
