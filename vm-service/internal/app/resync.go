package app

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"limen/vm-service/internal/domain"
)

// Resync repairs what lifecycle events missed (a dropped connection, a restart of either side) with
// one bulk read of the hypervisor: statuses converge, VMs whose domain vanished become Error, deletes
// interrupted after the hypervisor let go are finished, and domains this installation defined but
// never recorded (a crash between the two steps of a create) are removed once OrphanGrace has passed.
type Resync struct {
	Repo       Repository
	Hypervisor Hypervisor
	// OrphanGrace is how long a domain may exist without its row: far longer than a create takes
	// between defining the domain and recording it.
	OrphanGrace time.Duration
	Now         Clock
	Log         *slog.Logger
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
	known := make(map[uuid.UUID]bool, len(vms))
	for _, vm := range vms {
		known[vm.UUID] = true
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
	for id := range states {
		if !known[id] {
			errs = append(errs, uc.removeOrphan(ctx, id))
		}
	}
	return errors.Join(errs...)
}

func (uc Resync) removeOrphan(ctx context.Context, id uuid.UUID) error {
	created, owned, err := uc.Hypervisor.OwnedSince(ctx, id)
	if err != nil || !owned || uc.Now().Sub(created) < uc.OrphanGrace {
		return ignoreMissing(err)
	}
	// A row may have appeared since the list was read: only a domain still without one goes.
	if _, err := uc.Repo.Get(ctx, domain.ByUUID(id)); !errors.Is(err, domain.ErrVMNotFound) {
		return err
	}
	uc.Log.WarnContext(ctx, "removing a domain this installation defined but never recorded", "vm_uuid", id, "created", created)
	return uc.Hypervisor.Delete(ctx, id)
}

// ignoreMissing treats a domain deleted meanwhile as nothing to do.
func ignoreMissing(err error) error {
	if errors.Is(err, ErrMachineNotFound) {
		return nil
	}
	return err
}
