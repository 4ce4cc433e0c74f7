package app

import (
	"context"
	"time"

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
	// Wait is how long the caller waits for the end, as for ChangePower.
	Wait time.Duration
}

// ResizeVMHandler reserves the growth with quota-service first, changes the definition second and
// records the new size once the hypervisor took it; the reservation is committed with the row so
// written, or released when the resize did not happen. A pure shrink reserves nothing: its VM event
// tells quota-service.
type ResizeVMHandler struct {
	Repo       Repository
	Quota      Reservations
	Hypervisor Hypervisor
	// Replica is this process, named in its claims.
	Replica uuid.UUID
	// Tasks is the registry of the tasks this process runs (see Tasks).
	Tasks *Tasks
	Now   Clock
}

// ErrResizeNothing is an update naming neither CPU nor memory.
var ErrResizeNothing = failure.InvalidField("cpu", "Field 'cpu' or 'memory' is required for update")

// ErrResizedMeanwhile is an update whose VM grew between its reservation and its claim (another
// resize or restore ended in between): what was reserved no longer covers it.
var ErrResizedMeanwhile = failure.New(failure.Busy, "VM was resized meanwhile, try again")

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
	reserved := domain.QuotaChange{Key: changeKey("resize", vm.UUID, vm.Version), OwnerID: vm.OwnerID, VM: vm.UUID,
		CPU: cpu - vm.CPU, MemoryMiB: memoryMiB - vm.MemoryMiB}
	log := uc.Tasks.logger()
	held, err := reserve(ctx, uc.Quota, log, reserved)
	if err != nil {
		return nil, err
	}
	end := uc.Tasks.begin(vm.UUID)
	// As for power actions: the machine's state, not a stale record, decides whether it is stopped.
	quiet := uc.Tasks.alone(vm.UUID)
	status, reason, err := observe(ctx, uc.Hypervisor, vm.UUID)
	if err != nil {
		end()
		held.release(ctx)
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
		refused = probe.Resize(cpu, memoryMiB, uc.Now())
		if refused == nil && (cpu-row.CPU > reserved.CPU || memoryMiB-row.MemoryMiB > reserved.MemoryMiB) {
			refused = ErrResizedMeanwhile
		}
		if refused != nil {
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
		held.release(ctx)
		return nil, err
	}
	// Claimed and committed: the hypervisor works with no transaction or lock held.
	ctx = context.WithoutCancel(ctx)
	return uc.Tasks.detach(ctx, uc.Repo, cmd.Wait, claimed, func(run context.Context) (*domain.VM, error) {
		opErr := context.Cause(run) // the process stopped before the work began
		if opErr == nil {
			opErr = uc.Hypervisor.Resize(run, vm.UUID, cpu, memoryMiB)
		}
		now := uc.Now
		outcome := func(vm *domain.VM) {
			if opErr == nil && vm.Resize(cpu, memoryMiB, now()) != nil {
				// The definition has the new size: recorded even if the VM was started meanwhile.
				vm.Resized(cpu, memoryMiB, now())
			}
		}
		done, err := uc.Tasks.finish(ctx, uc.Repo, uc.Hypervisor, now, vm.UUID, claimed.Claim(), end, outcome)
		switch {
		case opErr != nil:
			held.release(ctx)
			return nil, hypervisorError("update", opErr)
		case err != nil:
			// The new size is not recorded yet (its record is retried): the hold stays until it
			// expires, and the record's VM event tells quota-service the size.
		default:
			held.commit(ctx, done)
		}
		return done, err
	})
}
