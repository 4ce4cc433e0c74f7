package app

import (
	"context"

	"limen/vm-service/internal/domain"
)

// GetVM asks for one VM the caller may see.
type GetVM struct {
	Caller Caller
	Ref    domain.Ref
}

// GetVMHandler answers from the record.
type GetVMHandler struct {
	Repo Repository
}

func (uc GetVMHandler) Handle(ctx context.Context, q GetVM) (*domain.VM, error) {
	return load(ctx, uc.Repo, q.Caller, q.Ref)
}

// load is the ownership gate every use case passes: others' VMs are indistinguishable from missing ones.
func load(ctx context.Context, repo Repository, caller Caller, ref domain.Ref) (*domain.VM, error) {
	vm, err := repo.Get(ctx, ref)
	if err != nil {
		return nil, err
	}
	if !caller.mayAccess(vm) {
		return nil, domain.ErrVMNotFound
	}
	return vm, nil
}
