package app

import (
	"context"

	"limen/vm-service/internal/domain"
)

// ListVMs asks for the caller's own VMs, or, when an admin sets All, everyone's.
type ListVMs struct {
	Caller Caller
	All    bool
}

// ListVMsHandler answers from the records, oldest first.
type ListVMsHandler struct {
	Repo Repository
}

func (uc ListVMsHandler) Handle(ctx context.Context, q ListVMs) ([]*domain.VM, error) {
	owner := q.Caller.UserID
	if q.All && q.Caller.Admin {
		owner = 0
	}
	return uc.Repo.List(ctx, owner)
}
