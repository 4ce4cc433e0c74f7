package app

import (
	"context"

	"github.com/google/uuid"

	"limen/vm-service/internal/domain"
)

// SetBootOrder asks for a new boot order of a VM the caller may see, stopped or running.
type SetBootOrder struct {
	Caller Caller
	Ref    domain.Ref
	Order  domain.BootOrder
}

// SetBootOrderHandler claims the VM with a task, as actions do, so the definition never changes under
// another action (a resize, a delete) and two changes never interleave. The persistent definition
// changes, whatever the VM's state: a running machine keeps the order it started with until its next
// start.
type SetBootOrderHandler struct {
	Repo       Repository
	Hypervisor Hypervisor
	// Replica is this process, named in its claims.
	Replica uuid.UUID
	// Tasks is the registry of the tasks this process runs (see Tasks).
	Tasks *Tasks
	Now   Clock
}

func (uc SetBootOrderHandler) Handle(ctx context.Context, cmd SetBootOrder) (*domain.VM, error) {
	return uc.set(ctx, cmd.Caller, cmd.Ref, domain.ActionBootOrder, nil, cmd.Order)
}

// set claims the VM for task, runs first (when not nil) and then the hypervisor's change of the boot
// order with no transaction or lock held, and records order once both succeeded. A failure of first
// leaves the boot order as it was.
func (uc SetBootOrderHandler) set(ctx context.Context, caller Caller, ref domain.Ref, task domain.Action,
	first func(context.Context, uuid.UUID) error, order domain.BootOrder) (*domain.VM, error) {
	vm, err := load(ctx, uc.Repo, caller, ref)
	if err != nil {
		return nil, err
	}
	end := uc.Tasks.begin(vm.UUID)
	claimed, err := uc.Repo.Update(ctx, vm.UUID, func(row *domain.VM) error {
		uc.Tasks.judge(row, uc.Replica, 1)
		return row.BeginTask(task, uc.Replica, uc.Now())
	})
	if err != nil {
		end()
		return nil, err
	}
	// Claimed and committed: the work must finish and the task be released even when the client goes.
	ctx = context.WithoutCancel(ctx)
	var opErr error
	if first != nil {
		opErr = first(ctx, vm.UUID)
	}
	if opErr == nil {
		if err := uc.Hypervisor.SetBootOrder(ctx, vm.UUID, order); err != nil {
			opErr = hypervisorError("boot order", err)
		}
	}
	now := uc.Now
	outcome := func(vm *domain.VM) {
		if opErr == nil {
			vm.SetBootOrder(order, now())
		}
	}
	done, err := uc.Tasks.finish(ctx, uc.Repo, uc.Hypervisor, now, vm.UUID, claimed.Claim(), end, outcome)
	if opErr != nil {
		return nil, opErr
	}
	return done, err
}
