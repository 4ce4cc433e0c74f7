package app

import (
	"context"

	"limen/vm-service/internal/domain"
)

// ListVMs answers GET /api/vms: a user's own VMs, or everyone's for an admin who asks for all.
type ListVMs struct {
	Repo Repository
}

func (uc ListVMs) Handle(ctx context.Context, caller Caller, all bool) ([]*domain.VM, error) {
	owner := caller.UserID
	if all && caller.Admin {
		owner = 0
	}
	return uc.Repo.List(ctx, owner)
}
