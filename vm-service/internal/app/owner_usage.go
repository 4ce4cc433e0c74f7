package app

import (
	"context"

	"limen/vm-service/internal/domain"
)

// OwnerUsage is what one user's VMs take (peer services ask it: auth-service before deleting a user).
type OwnerUsage struct {
	Repo Repository
}

func (uc OwnerUsage) Handle(ctx context.Context, ownerID int64) (domain.Usage, error) {
	return uc.Repo.Usage(ctx, ownerID)
}
