package app

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"

	"limen/vm-service/internal/domain"
)

// DeleteVM asks to remove a VM the caller may see, with its disk.
type DeleteVM struct {
	Caller Caller
	Ref    domain.Ref
	// Wait is how long the caller waits for the end, as for ChangePower.
	Wait time.Duration
}

// DeleteVMHandler removes the domain and its disk, then the record, then tells quota-service that the
// VM's usage is free. If the record cannot be removed after the hypervisor let go, the VM keeps its
// delete task and the removal is retried in the background; the resync finishes the job too. A
// delete never waits for quota-service: it follows the VM's deletion event as well.
type DeleteVMHandler struct {
	Repo       Repository
	Hypervisor Hypervisor
	Quota      Reservations
	// Replica is this process, named in its claims.
	Replica uuid.UUID
	// Tasks is the registry of the tasks this process runs (see Tasks).
	Tasks *Tasks
	Now   Clock
}

// Handle answers the VM as it was last recorded, its task ended.
func (uc DeleteVMHandler) Handle(ctx context.Context, cmd DeleteVM) (*domain.VM, error) {
	vm, err := load(ctx, uc.Repo, cmd.Caller, cmd.Ref)
	if err != nil {
		return nil, err
	}
	end := uc.Tasks.begin(vm.UUID)
	claimed, err := uc.Repo.Update(ctx, vm.UUID, func(vm *domain.VM) error {
		uc.Tasks.judge(vm, uc.Replica, 1)
		return vm.BeginTask(domain.ActionDelete, uc.Replica, uc.Now())
	})
	if err != nil {
		end()
		return nil, err
	}
	ctx = context.WithoutCancel(ctx)
	return uc.Tasks.detach(ctx, uc.Repo, cmd.Wait, claimed, func(run context.Context) (*domain.VM, error) {
		err := context.Cause(run) // the process stopped before the work began
		if err == nil {
			err = uc.Hypervisor.Delete(run, vm.UUID)
		}
		if err != nil {
			// Nothing or part of it went: the VM stays, with the state its machine is in.
			outcome := func(*domain.VM) {}
			if status, reason, err := observe(ctx, uc.Hypervisor, vm.UUID); err == nil {
				outcome = func(vm *domain.VM) { vm.ObserveStatus(status, reason, uc.Now()) }
			}
			_, _ = uc.Tasks.finish(ctx, uc.Repo, uc.Hypervisor, uc.Now, vm.UUID, claimed.Claim(), end, outcome)
			return nil, hypervisorError("delete", err)
		}
		// The machine is gone: the work has ended, whatever becomes of the record.
		end()
		// A resync may have finished the delete first; the VM is gone either way.
		remove := func(ctx context.Context) error {
			if err := uc.Repo.Remove(ctx, claimed); err != nil && !errors.Is(err, domain.ErrVMNotFound) {
				return err
			}
			releaseVM(ctx, uc.Quota, uc.Tasks.logger(), claimed)
			return nil
		}
		if err := remove(ctx); err != nil {
			uc.Tasks.retry("removing the record of a deleted VM", vm.UUID, claimed.Claim(), err, remove)
			return nil, err
		}
		gone := *claimed
		gone.EndTask(uc.Now())
		return &gone, nil
	})
}
