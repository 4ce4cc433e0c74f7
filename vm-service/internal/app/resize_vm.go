package app

import (
	"context"

	"github.com/google/uuid"

	"limen/libs/failure"
	"limen/vm-service/internal/domain"
)

// ResizeVM is the update action: new CPU and memory for a stopped VM. The one left nil keeps its
// current value; naming neither is refused (ErrResizeNothing).
type ResizeVM struct {
	Caller    Caller
	Ref       domain.Ref
	CPU       *int
	MemoryMiB *int
}

// ResizeVMHandler changes the definition first and records the new size once the hypervisor took it.
type ResizeVMHandler struct {
	Repo       Repository
	Quotas     Quotas
	Hypervisor Hypervisor
	// Replica is this process, named in its claims.
	Replica uuid.UUID
	// Tasks is the registry of the tasks this process runs (see Tasks).
	Tasks *Tasks
	Now   Clock
}

// ErrResizeNothing is an update naming neither CPU nor memory.
var ErrResizeNothing = failure.InvalidField("cpu", "Field 'cpu' or 'memory' is required for update")

// of is the CPU and memory the command gives vm.
func (r ResizeVM) of(vm *domain.VM) (cpu, memoryMiB int) {
	cpu, memoryMiB = vm.CPU, vm.MemoryMiB
	if r.CPU != nil {
		cpu = *r.CPU
	}
	if r.MemoryMiB != nil {
		memoryMiB = *r.MemoryMiB
	}
	return cpu, memoryMiB
}

func (uc ResizeVMHandler) Handle(ctx context.Context, cmd ResizeVM) (*domain.VM, error) {
	if cmd.CPU == nil && cmd.MemoryMiB == nil {
		return nil, ErrResizeNothing
	}
	vm, err := load(ctx, uc.Repo, cmd.Caller, cmd.Ref)
	if err != nil {
		return nil, err
	}
	cpu, memoryMiB := cmd.of(vm)
	if err := uc.admit(ctx, vm, cpu, memoryMiB); err != nil {
		return nil, err
	}
	end := uc.Tasks.begin(vm.UUID)
	// As for power actions: the machine's state, not a stale record, decides whether it is stopped.
	quiet := uc.Tasks.alone(vm.UUID)
	status, reason, err := observe(ctx, uc.Hypervisor, vm.UUID)
	if err != nil {
		end()
		return nil, hypervisorError("update", err)
	}
	var refused error
	claimed, err := uc.Repo.Update(ctx, vm.UUID, func(row *domain.VM) error {
		uc.Tasks.judge(row, uc.Replica, 1)
		refreshed := refresh(row, vm.Version, quiet, status, reason, uc.Now())
		// The dimension not asked for is kept as the locked row has it, not as it was read before.
		cpu, memoryMiB = cmd.of(row)
		// Checked on a copy: the real change is stored only once the hypervisor took it.
		probe := *row
		if refused = probe.Resize(cpu, memoryMiB, uc.Now()); refused != nil {
			if refreshed {
				return nil // the refresh is kept
			}
			return refused
		}
		return row.BeginTask(domain.ActionUpdate, uc.Replica, uc.Now())
	})
	if err == nil && refused != nil {
		err = refused
	}
	if err != nil {
		end()
		return nil, err
	}
	// Claimed and committed: the hypervisor works with no transaction or lock held.
	ctx = context.WithoutCancel(ctx)
	opErr := uc.Hypervisor.Resize(ctx, vm.UUID, cpu, memoryMiB)
	now := uc.Now
	outcome := func(vm *domain.VM) {
		if opErr == nil && vm.Resize(cpu, memoryMiB, now()) != nil {
			// The definition has the new size: recorded even if the VM was started meanwhile.
			vm.Resized(cpu, memoryMiB, now())
		}
	}
	done, err := uc.Tasks.finish(ctx, uc.Repo, uc.Hypervisor, now, vm.UUID, claimed.Claim(), end, outcome)
	if opErr != nil {
		return nil, hypervisorError("update", opErr)
	}
	return done, err
}

// admit checks the growth against the owner's quota; shrinking always passes.
func (uc ResizeVMHandler) admit(ctx context.Context, vm *domain.VM, cpu, memoryMiB int) error {
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
