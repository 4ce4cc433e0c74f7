package app

import (
	"context"
	"errors"

	"github.com/google/uuid"

	"limen/vm-service/internal/domain"
)

// ObserveStatus asks to bring one VM's status in line with the hypervisor after a lifecycle event.
type ObserveStatus struct {
	VMUUID uuid.UUID
}

// ObserveStatusHandler reads the machine's state afresh: the event only says that something happened,
// so a late or reordered event can never write a stale status.
type ObserveStatusHandler struct {
	Repo       Repository
	Hypervisor Hypervisor
	Now        Clock
}

func (uc ObserveStatusHandler) Handle(ctx context.Context, cmd ObserveStatus) error {
	status, reason, err := observe(ctx, uc.Hypervisor, cmd.VMUUID)
	if err != nil {
		return err
	}
	_, err = uc.Repo.Update(ctx, cmd.VMUUID, func(vm *domain.VM) error {
		if vm.Task == domain.ActionDelete && reason != "" {
			return nil // the delete in progress removed the domain; the row goes next
		}
		if vm.Busy() && vm.Task.Snapshots() {
			return nil // the snapshot task moves the machine itself and records where it left it
		}
		vm.ObserveStatus(status, reason, uc.Now())
		return nil
	})
	if errors.Is(err, domain.ErrVMNotFound) {
		return nil // not ours, or deleted meanwhile
	}
	return err
}
