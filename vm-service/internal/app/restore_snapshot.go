package app

import (
	"context"
	"errors"

	"github.com/google/uuid"

	"limen/vm-service/internal/domain"
)

// RestoreSnapshot asks to put a VM back as one of its snapshots saved it.
type RestoreSnapshot struct {
	Caller Caller
	ID     int64
}

// RestoreSnapshotHandler claims the VM, has the hypervisor put the snapshot back with nothing held,
// and then records the machine as the hypervisor reports it: CPU, memory, boot order and status
// follow the restored definition and state, whatever the VM was before. A restore that gives back
// more CPU or memory reserves it with quota-service first, as a resize does.
type RestoreSnapshotHandler struct {
	Repo       Repository
	Snapshots  SnapshotRepository
	Quota      Reservations
	Hypervisor SnapshotHypervisor
	// Replica is this process, named in its claims.
	Replica uuid.UUID
	// Tasks is the registry of the tasks this process runs (see Tasks).
	Tasks *Tasks
	Now   Clock
}

// Handle answers the snapshot restored.
func (uc RestoreSnapshotHandler) Handle(ctx context.Context, cmd RestoreSnapshot) (*domain.Snapshot, error) {
	snap, vm, err := loadSnapshot(ctx, uc.Repo, uc.Snapshots, cmd.Caller, cmd.ID)
	if err != nil {
		return nil, err
	}
	reserved := domain.QuotaChange{Key: changeKey("restore", vm.UUID, vm.Version), OwnerID: vm.OwnerID, VM: vm.UUID,
		CPU: snap.CPU - vm.CPU, MemoryMiB: snap.MemoryMiB - vm.MemoryMiB}
	held, err := reserve(ctx, uc.Quota, uc.Tasks.logger(), reserved)
	if err != nil {
		return nil, err
	}
	fits := func(row *domain.VM) error {
		if snap.CPU-row.CPU > reserved.CPU || snap.MemoryMiB-row.MemoryMiB > reserved.MemoryMiB {
			return ErrResizedMeanwhile
		}
		return nil
	}
	end := uc.Tasks.begin(vm.UUID)
	claimed, err := claimForSnapshot(ctx, uc.Snapshots, uc.Tasks, uc.Replica, uc.Now, vm.UUID, domain.ActionSnapshotRestore, snap.ID, fits)
	if err != nil {
		end()
		held.release(ctx)
		return nil, err
	}
	ctx = context.WithoutCancel(ctx)
	scope := &snapshotScope{Repository: uc.Repo, snapshots: uc.Snapshots}
	_, err = uc.Tasks.detach(ctx, uc.Repo, 0, claimed, func(run context.Context) (*domain.VM, error) {
		opErr := context.Cause(run) // the process stopped before the work began
		var restored Restored
		if opErr == nil {
			restored, opErr = uc.Hypervisor.RestoreSnapshot(run, vm.UUID, snap.Machine)
		}
		now := uc.Now
		outcome := func(vm *domain.VM) {
			vm.Resized(restored.CPU, restored.MemoryMiB, now())
			if restored.BootOrder != "" {
				vm.SetBootOrder(restored.BootOrder, now())
			}
			vm.ObserveStatus(restored.Status, "", now())
		}
		if opErr != nil {
			apply := observed(ctx, uc.Hypervisor, vm.UUID, now)
			outcome = func(vm *domain.VM) {
				if errors.Is(opErr, ErrSnapshotMissing) {
					scope.held.Remove(snap.ID) // never again offered to fail the same way
				}
				apply(vm)
			}
		}
		done, err := uc.Tasks.finish(ctx, scope, uc.Hypervisor, now, vm.UUID, claimed.Claim(), end, outcome)
		// A restore whose record is still being retried keeps its hold until it expires, as a resize.
		switch {
		case opErr != nil:
			held.release(ctx)
		case err == nil:
			held.commit(ctx, done)
		}
		switch {
		case errors.Is(opErr, ErrSnapshotMissing):
			return nil, domain.ErrSnapshotNotFound
		case opErr != nil:
			return nil, hypervisorError("snapshot restore", opErr)
		}
		return done, err
	})
	if err != nil {
		return nil, err
	}
	return snap, nil
}
