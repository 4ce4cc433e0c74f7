package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"limen/vm-service/internal/domain"
)

// ChangePower runs start, stop, restart, pause, resume and force_stop. The VM is claimed with a task
// first, so a second request while the hypervisor works is refused instead of racing it.
type ChangePower struct {
	Repo       Repository
	Hypervisor Hypervisor
	// StopTimeout is how long a guest gets to power off on ACPI before it is forced off.
	StopTimeout time.Duration
	// Replica is this process: its claims block others as long as its heartbeat lasts.
	Replica uuid.UUID
	Now     Clock
}

func (uc ChangePower) Handle(ctx context.Context, caller Caller, ref domain.Ref, action domain.Action) (*domain.VM, error) {
	vm, err := load(ctx, uc.Repo, caller, ref)
	if err != nil {
		return nil, err
	}
	var target domain.Status
	if _, err := uc.Repo.Update(ctx, vm.UUID, func(vm *domain.VM) error {
		if target, err = vm.BeginPower(action); err != nil {
			return err
		}
		return vm.BeginTask(action, uc.Replica, uc.Now())
	}); err != nil {
		return nil, err
	}
	// The claim's transaction has committed: no transaction or lock is held while the hypervisor works.
	// The hypervisor call must finish and the task be released even when the client goes away.
	ctx = context.WithoutCancel(ctx)
	opErr := uc.run(ctx, vm, action)
	done, err := uc.Repo.Update(ctx, vm.UUID, func(vm *domain.VM) error {
		endTask(vm, action, uc.Replica)
		switch {
		case opErr == nil:
			vm.CompletePower(target, uc.Now())
		case errors.Is(opErr, ErrMachineNotFound):
			vm.ObserveStatus(domain.StatusError, domain.ReasonMachineMissing, uc.Now())
		}
		return nil
	})
	if opErr != nil {
		return nil, hypervisorError(string(action), opErr)
	}
	return done, err
}

func (uc ChangePower) run(ctx context.Context, vm *domain.VM, action domain.Action) error {
	h := uc.Hypervisor
	switch action {
	case domain.ActionStart:
		return h.Start(ctx, vm.UUID)
	case domain.ActionStop:
		_, err := h.Shutdown(ctx, vm.UUID, uc.StopTimeout)
		return err
	case domain.ActionRestart:
		// A cold restart (power off, then on) works for every guest, with or without ACPI support, and
		// applies a changed definition, which an in-guest reboot would not.
		if _, err := h.Shutdown(ctx, vm.UUID, uc.StopTimeout); err != nil {
			return err
		}
		return h.Start(ctx, vm.UUID)
	case domain.ActionPause:
		return h.Pause(ctx, vm.UUID)
	case domain.ActionResume:
		return h.Resume(ctx, vm.UUID)
	case domain.ActionForceStop:
		return h.ForceStop(ctx, vm.UUID)
	}
	return fmt.Errorf("%s is not a power action", action)
}

// endTask releases the task a process began, unless another process took the VM over meanwhile (this
// one's heartbeat lapsed, say, while the database was out of reach): that claim is not ours to end.
func endTask(vm *domain.VM, a domain.Action, replica uuid.UUID) {
	if vm.HoldsTask(a, replica) {
		vm.EndTask()
	}
}
