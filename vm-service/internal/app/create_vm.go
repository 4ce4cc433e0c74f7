package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"limen/libs/contract"
	"limen/vm-service/internal/domain"
)

// CreateVM is what a user asks for: a new VM, started at once when Start is set.
type CreateVM struct {
	Caller    Caller
	Name      string
	CPU       int
	MemoryMiB int
	OSType    string
	Start     bool
}

// CreateVMHandler reserves the VM's size with quota-service first, defines its disk and domain second
// and records it third, so an over-quota request makes nothing, a hypervisor failure leaves no row
// behind and a database failure is undone on the hypervisor; the reservation is committed once the
// row is written and released when anything before failed.
type CreateVMHandler struct {
	Repo       Repository
	Hypervisor Hypervisor
	Quota      Reservations
	Catalogue  domain.Catalogue
	Power      ChangePowerHandler
	Host       string
	Now        Clock
	Log        *slog.Logger
}

func (uc CreateVMHandler) Handle(ctx context.Context, cmd CreateVM) (*domain.VM, error) {
	os, err := uc.Catalogue.Lookup(cmd.OSType)
	if err != nil {
		return nil, err
	}
	vm, err := domain.NewVM(cmd.Caller.UserID, cmd.Name, cmd.CPU, cmd.MemoryMiB, os, uc.Now())
	if err != nil {
		return nil, err
	}
	vm.Host = uc.Host
	// The name is checked before anything is reserved so the common refusal costs nothing; the unique
	// index decides races.
	if taken, err := uc.Repo.NameTaken(ctx, vm.OwnerID, vm.Name); err != nil {
		return nil, err
	} else if taken {
		return nil, domain.ErrNameTaken
	}
	held, err := reserve(ctx, uc.Quota, uc.Log, domain.QuotaChange{Key: createKey(vm.UUID), OwnerID: vm.OwnerID, VM: vm.UUID,
		VMs: 1, CPU: vm.CPU, MemoryMiB: vm.MemoryMiB})
	if err != nil {
		return nil, err
	}
	spec := MachineSpec{UUID: vm.UUID, Name: vm.Name, CPU: vm.CPU, MemoryMiB: vm.MemoryMiB, DiskGB: vm.DiskGB}
	if err := uc.Hypervisor.Create(ctx, spec); err != nil {
		held.release(ctx)
		return nil, hypervisorError("create", err)
	}
	if err := uc.Repo.Add(ctx, vm); err != nil {
		// The request's context may be what failed; the undo must run regardless.
		if undoErr := uc.Hypervisor.Delete(context.WithoutCancel(ctx), vm.UUID); undoErr != nil {
			uc.Log.ErrorContext(ctx, "undo of a created machine failed; it is an orphan", "vm_uuid", vm.UUID, "err", undoErr)
		}
		held.release(ctx)
		return nil, err
	}
	held.commit(ctx, vm)
	if !cmd.Start {
		return vm, nil
	}
	started, err := uc.Power.Handle(ctx, ChangePower{Caller: cmd.Caller, Ref: domain.ByUUID(vm.UUID), Action: domain.ActionStart})
	if err != nil {
		// The VM exists and is answered as Stopped; the user can start it again.
		uc.Log.WarnContext(ctx, "start after create failed", "vm_uuid", vm.UUID, "err", err)
		return vm, nil
	}
	return started, nil
}

// hypervisorError keeps the hypervisor's typed failures apart from the rest.
func hypervisorError(op string, err error) error {
	if errors.Is(err, contract.ErrHypervisorUnavailable) {
		return domain.ErrHypervisorDown
	}
	return fmt.Errorf("%s on the hypervisor: %w", op, err)
}
