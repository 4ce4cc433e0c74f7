package app

import (
	"context"

	"limen/media-service/internal/domain"
)

// ListISOs answers GET /api/vms/isos: the library as the pool shows it now.
type ListISOs struct {
	Library Library
}

func (uc ListISOs) Handle(ctx context.Context) ([]domain.ISO, error) {
	isos, err := uc.Library.List(ctx)
	return isos, hypervisorError(err)
}
