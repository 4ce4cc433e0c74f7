package app

import "limen/vm-service/internal/domain"

// ListOSTypes answers GET /api/vms/os-types from the configured catalogue.
type ListOSTypes struct {
	Catalogue domain.Catalogue
}

func (uc ListOSTypes) Handle() domain.Catalogue { return uc.Catalogue }
