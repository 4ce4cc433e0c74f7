package app

import (
	"context"
	"errors"

	"github.com/google/uuid"

	"limen/vm-service/internal/domain"
)

// ObserveStatus brings one VM's status in line with the hypervisor after a lifecycle event. The event
// only says that something happened; the state is read afresh, so a late or reordered event can never
// write a stale status.
type ObserveStatus struct {
	Repo       Repository
	Hypervisor Hypervisor
	Now        Clock
}

func (uc ObserveStatus) Handle(ctx context.Context, id uuid.UUID) error {
	status, reason, err := observe(ctx, uc.Hypervisor, id)
	if err != nil {
		return err
	}
	_, err = uc.Repo.Update(ctx, id, func(vm *domain.VM) error {
		if vm.Task == domain.ActionDelete && reason != "" {
			return nil // the delete in progress removed the domain; the row goes next
		}
		vm.ObserveStatus(status, reason, uc.Now())
		return nil
	})
	if errors.Is(err, domain.ErrVMNotFound) {
		return nil // not ours, or deleted meanwhile
	}
	return err
}
