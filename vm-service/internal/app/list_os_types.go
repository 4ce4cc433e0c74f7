package app

import (
	"context"

	"limen/vm-service/internal/domain"
)

// ListOSTypes asks for the operating systems a VM may be created with.
type ListOSTypes struct{}

// ListOSTypesHandler answers from the configured catalogue.
type ListOSTypesHandler struct {
	Catalogue domain.Catalogue
}

func (uc ListOSTypesHandler) Handle(context.Context, ListOSTypes) (domain.Catalogue, error) {
	return uc.Catalogue, nil
}
