package app

import (
	"context"

	"limen/vm-service/internal/domain"
)

// ResizeVM is the update action: new CPU and memory for a stopped VM.
type ResizeVM struct {
	Repo       Repository
	Quotas     Quotas
	Hypervisor Hypervisor
	Now        Clock
}

func (uc ResizeVM) Handle(ctx context.Context, caller Caller, ref domain.Ref, cpu, memoryMiB int) (*domain.VM, error) {
	vm, err := load(ctx, uc.Repo, caller, ref)
	if err != nil {
		return nil, err
	}
	if err := uc.admit(ctx, vm, cpu, memoryMiB); err != nil {
		return nil, err
	}
	if _, err := uc.Repo.Update(ctx, vm.UUID, func(vm *domain.VM) error {
		// Checked on a copy: the real change is stored only once the hypervisor took it.
		probe := *vm
		if err := probe.Resize(cpu, memoryMiB, uc.Now()); err != nil {
			return err
		}
		return vm.BeginTask(domain.ActionUpdate, uc.Now())
	}); err != nil {
		return nil, err
	}
	ctx = context.WithoutCancel(ctx)
	opErr := uc.Hypervisor.Resize(ctx, vm.UUID, cpu, memoryMiB)
	done, err := uc.Repo.Update(ctx, vm.UUID, func(vm *domain.VM) error {
		vm.EndTask()
		if opErr == nil {
			return vm.Resize(cpu, memoryMiB, uc.Now())
		}
		return nil
	})
	if opErr != nil {
		return nil, hypervisorError("update", opErr)
	}
	return done, err
}

// admit checks the growth against the owner's quota; shrinking always passes.
func (uc ResizeVM) admit(ctx context.Context, vm *domain.VM, cpu, memoryMiB int) error {
	limits, err := uc.Quotas.LimitsFor(ctx, vm.OwnerID)
	if err != nil {
		return err
	}
	used, err := uc.Repo.Usage(ctx, vm.OwnerID)
	if err != nil {
		return err
	}
	return limits.Admit(used, 0, cpu-vm.CPU, memoryMiB-vm.MemoryMiB)
}
