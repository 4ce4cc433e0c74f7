package app

import (
	"context"

	"limen/media-service/internal/domain"
)

// ListISOs asks for the library's images.
type ListISOs struct{}

// ListISOsHandler answers the library as the pool shows it now.
type ListISOsHandler struct {
	Library Library
}

func (h ListISOsHandler) Handle(ctx context.Context, _ ListISOs) ([]domain.ISO, error) {
	isos, err := h.Library.List(ctx)
	return isos, hypervisorError(err)
}
