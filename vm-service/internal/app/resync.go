package app

import (
	"context"
	"errors"
	"log/slog"

	"limen/vm-service/internal/domain"
)

// Resync repairs what lifecycle events missed (a dropped connection, a restart of either side) with
// one bulk read of the hypervisor: statuses converge, VMs whose domain vanished become Error, and
// deletes interrupted after the hypervisor let go are finished.
type Resync struct {
	Repo       Repository
	Hypervisor Hypervisor
	Now        Clock
	Log        *slog.Logger
}

func (uc Resync) Handle(ctx context.Context) error {
	states, err := uc.Hypervisor.States(ctx)
	if err != nil {
		return err
	}
	vms, err := uc.Repo.List(ctx, 0)
	if err != nil {
		return err
	}
	var errs []error
	for _, vm := range vms {
		status, present := states[vm.UUID]
		reason := ""
		if !present {
			status, reason = domain.StatusError, domain.ReasonMachineMissing
		}
		if vm.Busy(uc.Now()) && vm.Task != domain.ActionDelete {
			continue // the action in progress reports its own outcome
		}
		if vm.Status == status && vm.StatusReason == reason && vm.Task == "" {
			continue
		}
		if vm.Task == domain.ActionDelete && !present {
			if err := uc.Repo.Remove(ctx, vm); err != nil && !errors.Is(err, domain.ErrVMNotFound) {
				errs = append(errs, err)
			}
			continue
		}
		if _, err := uc.Repo.Update(ctx, vm.UUID, func(vm *domain.VM) error {
			if vm.Busy(uc.Now()) {
				return nil
			}
			if vm.Task != "" {
				uc.Log.WarnContext(ctx, "releasing an abandoned task", "vm_uuid", vm.UUID, "task", vm.Task)
				vm.EndTask()
			}
			vm.ObserveStatus(status, reason, uc.Now())
			return nil
		}); err != nil && !errors.Is(err, domain.ErrVMNotFound) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
