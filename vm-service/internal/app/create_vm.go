package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"limen/vm-service/internal/domain"
)

// CreateVMRequest is what a user asks for.
type CreateVMRequest struct {
	Name      string
	CPU       int
	MemoryMiB int
	OSType    string
	Start     bool
}

// CreateVM defines the VM's disk and domain first and records it second, so a hypervisor failure
// leaves no row behind and a database failure is undone on the hypervisor.
type CreateVM struct {
	Repo       Repository
	Hypervisor Hypervisor
	Quotas     Quotas
	Catalogue  domain.Catalogue
	Power      *ChangePower
	Host       string
	Now        Clock
	Log        *slog.Logger
}

func (uc CreateVM) Handle(ctx context.Context, caller Caller, req CreateVMRequest) (*domain.VM, error) {
	os, err := uc.Catalogue.Lookup(req.OSType)
	if err != nil {
		return nil, err
	}
	vm, err := domain.NewVM(caller.UserID, req.Name, req.CPU, req.MemoryMiB, os, uc.Now())
	if err != nil {
		return nil, err
	}
	vm.Host = uc.Host
	// Name and quota are checked before touching the hypervisor so the common refusals cost nothing;
	// the unique index and Add's admission decide races.
	if taken, err := uc.Repo.NameTaken(ctx, vm.OwnerID, vm.Name); err != nil {
		return nil, err
	} else if taken {
		return nil, domain.ErrNameTaken
	}
	limits, err := uc.Quotas.LimitsFor(ctx, vm.OwnerID)
	if err != nil {
		return nil, err
	}
	admit := func(used domain.Usage) error { return limits.Admit(used, 1, vm.CPU, vm.MemoryMiB) }
	if used, err := uc.Repo.Usage(ctx, vm.OwnerID); err != nil {
		return nil, err
	} else if err := admit(used); err != nil {
		return nil, err
	}
	spec := MachineSpec{UUID: vm.UUID, Name: vm.Name, CPU: vm.CPU, MemoryMiB: vm.MemoryMiB, DiskGB: vm.DiskGB}
	if err := uc.Hypervisor.Create(ctx, spec); err != nil {
		return nil, hypervisorError("create", err)
	}
	if err := uc.Repo.Add(ctx, vm, admit); err != nil {
		// The request's context may be what failed; the undo must run regardless.
		if undoErr := uc.Hypervisor.Delete(context.WithoutCancel(ctx), vm.UUID); undoErr != nil {
			uc.Log.ErrorContext(ctx, "undo of a created machine failed; it is an orphan", "vm_uuid", vm.UUID, "err", undoErr)
		}
		return nil, err
	}
	if !req.Start {
		return vm, nil
	}
	started, err := uc.Power.Handle(ctx, caller, domain.ByUUID(vm.UUID), domain.ActionStart)
	if err != nil {
		// The VM exists and is answered as Stopped; the user can start it again.
		uc.Log.WarnContext(ctx, "start after create failed", "vm_uuid", vm.UUID, "err", err)
		return vm, nil
	}
	return started, nil
}

// hypervisorError keeps the hypervisor's typed failures apart from the rest.
func hypervisorError(op string, err error) error {
	if errors.Is(err, ErrHypervisorUnavailable) {
		return domain.Unavailable("Hypervisor unavailable, try again shortly")
	}
	return fmt.Errorf("%s on the hypervisor: %w", op, err)
}
