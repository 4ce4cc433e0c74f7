package app

import (
	"context"

	"limen/vm-service/internal/domain"
)

// OwnerUsage asks what one user's VMs take (peer services ask it: auth-service before deleting a user).
type OwnerUsage struct {
	OwnerID int64
}

// OwnerUsageHandler answers from the records, stopped VMs included.
type OwnerUsageHandler struct {
	Repo Repository
}

func (uc OwnerUsageHandler) Handle(ctx context.Context, q OwnerUsage) (domain.Usage, error) {
	return uc.Repo.Usage(ctx, q.OwnerID)
}
