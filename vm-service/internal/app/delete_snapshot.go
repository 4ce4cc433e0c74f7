package app

import (
	"context"

	"github.com/google/uuid"

	"limen/vm-service/internal/domain"
)

// DeleteSnapshot asks to remove one of a VM's snapshots; the VM stays as it is.
type DeleteSnapshot struct {
	Caller Caller
	ID     int64
}

// DeleteSnapshotHandler claims the VM (a restore or another snapshot must not meet a half-deleted
// one), has the hypervisor delete the snapshot's data with nothing held, and removes the record once
// it is gone.
type DeleteSnapshotHandler struct {
	Repo       Repository
	Snapshots  SnapshotRepository
	Hypervisor SnapshotHypervisor
	// Replica is this process, named in its claims.
	Replica uuid.UUID
	// Tasks is the registry of the tasks this process runs (see Tasks).
	Tasks *Tasks
	Now   Clock
}

// Handle answers the snapshot deleted.
func (uc DeleteSnapshotHandler) Handle(ctx context.Context, cmd DeleteSnapshot) (*domain.Snapshot, error) {
	snap, vm, err := loadSnapshot(ctx, uc.Repo, uc.Snapshots, cmd.Caller, cmd.ID)
	if err != nil {
		return nil, err
	}
	end := uc.Tasks.begin(vm.UUID)
	claimed, err := claimForSnapshot(ctx, uc.Snapshots, uc.Tasks, uc.Replica, uc.Now, vm.UUID, domain.ActionSnapshotDelete, snap.ID, nil)
	if err != nil {
		end()
		return nil, err
	}
	ctx = context.WithoutCancel(ctx)
	scope := &snapshotScope{Repository: uc.Repo, snapshots: uc.Snapshots}
	_, err = uc.Tasks.detach(ctx, uc.Repo, 0, claimed, func(run context.Context) (*domain.VM, error) {
		opErr := context.Cause(run) // the process stopped before the work began
		if opErr == nil {
			opErr = uc.Hypervisor.DeleteSnapshot(run, vm.UUID, snap.Machine)
		}
		outcome := func(*domain.VM) {
			if opErr == nil {
				scope.held.Remove(snap.ID)
			}
		}
		done, err := uc.Tasks.finish(ctx, scope, uc.Hypervisor, uc.Now, vm.UUID, claimed.Claim(), end, outcome)
		if opErr != nil {
			return nil, hypervisorError("snapshot delete", opErr)
		}
		return done, err
	})
	if err != nil {
		return nil, err
	}
	return snap, nil
}
