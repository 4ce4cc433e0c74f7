package app

import (
	"context"
	"errors"

	"github.com/google/uuid"

	"limen/vm-service/internal/domain"
)

// DeleteVM removes the domain and its disk, then the record. If the record cannot be removed after
// the hypervisor let go, the VM keeps its delete task and the resync finishes the job.
type DeleteVM struct {
	Repo       Repository
	Hypervisor Hypervisor
	// Replica is this process, named in its claims.
	Replica uuid.UUID
	Now     Clock
}

func (uc DeleteVM) Handle(ctx context.Context, caller Caller, ref domain.Ref) (*domain.VM, error) {
	vm, err := load(ctx, uc.Repo, caller, ref)
	if err != nil {
		return nil, err
	}
	claimed, err := uc.Repo.Update(ctx, vm.UUID, func(vm *domain.VM) error {
		return vm.BeginTask(domain.ActionDelete, uc.Replica, uc.Now())
	})
	if err != nil {
		return nil, err
	}
	ctx = context.WithoutCancel(ctx)
	if err := uc.Hypervisor.Delete(ctx, vm.UUID); err != nil {
		_, _ = uc.Repo.Update(ctx, vm.UUID, func(vm *domain.VM) error { endTask(vm, domain.ActionDelete, uc.Replica); return nil })
		return nil, hypervisorError("delete", err)
	}
	// A resync may have finished the delete first; the VM is gone either way.
	if err := uc.Repo.Remove(ctx, claimed); err != nil && !errors.Is(err, domain.ErrVMNotFound) {
		return nil, err
	}
	return claimed, nil
}
