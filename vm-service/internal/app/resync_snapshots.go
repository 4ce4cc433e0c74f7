package app

import (
	"context"
	"errors"
	"log/slog"

	"github.com/google/uuid"

	"limen/libs/contract"
	"limen/vm-service/internal/domain"
)

// ResyncSnapshots asks, within a resync, to settle the snapshot records of the VMs it read (judged)
// against the hypervisor, whose machines it read after them (States).
type ResyncSnapshots struct {
	VMs    []*domain.VM
	States map[uuid.UUID]domain.Status
}

// ResyncSnapshotsHandler keeps snapshot records true to the hypervisor, so that none is left to fail
// at restore time: a snapshot the hypervisor lost (deleted behind LIMEN's back, or gone with its
// machine) is removed and announced, and one whose taking was cut off (the process died) is recorded
// as taken when the hypervisor has it and dropped when not.
//
// As for statuses, a reading is applied only to a VM that has no task and still has the version read
// before the hypervisor was asked: every snapshot operation claims the VM and so moves its version,
// and its own result stands until the next resync reads afresh.
type ResyncSnapshotsHandler struct {
	Snapshots  SnapshotRepository
	Hypervisor SnapshotHypervisor
	// Replica and Tasks are this process and the tasks it runs.
	Replica uuid.UUID
	Tasks   *Tasks
	Now     Clock
	Log     *slog.Logger
}

func (uc ResyncSnapshotsHandler) Handle(ctx context.Context, cmd ResyncSnapshots) error {
	all, err := uc.Snapshots.List(ctx, 0)
	if err != nil || len(all) == 0 {
		return err
	}
	byVM := map[int64][]*domain.Snapshot{}
	for _, s := range all {
		byVM[s.VMID] = append(byVM[s.VMID], s)
	}
	var errs []error
	for _, read := range cmd.VMs {
		if len(byVM[read.ID]) == 0 || read.Task != "" {
			continue // a task's own end settles its snapshot; a dead one is released first
		}
		var onHypervisor map[string]bool
		if _, present := cmd.States[read.UUID]; present {
			onHypervisor, err = uc.Hypervisor.SnapshotNames(ctx, read.UUID)
			if err != nil && !errors.Is(err, contract.ErrMachineNotFound) {
				errs = append(errs, err)
				continue
			}
		}
		if settled(byVM[read.ID], onHypervisor) {
			continue
		}
		if _, err := uc.Snapshots.Update(ctx, read.UUID, func(vm *domain.VM, set *domain.Snapshots) error {
			uc.Tasks.judge(vm, uc.Replica, 0)
			if vm.Version != read.Version || vm.Task != "" {
				return nil // changed since it was read: the reading may be older than the change
			}
			for _, s := range append([]*domain.Snapshot(nil), set.List...) {
				switch present := onHypervisor[s.Machine]; {
				case present && !s.Taken:
					// The state it captured is the VM's when the snapshot's claim was taken.
					s.Took(s.State, uc.Now())
				case !present:
					if s.Taken {
						uc.Log.WarnContext(ctx, "removing the record of a snapshot the hypervisor no longer has",
							"vm_uuid", vm.UUID, "snapshot_id", s.ID, "snapshot", s.Name)
					}
					set.Remove(s.ID)
				}
			}
			return nil
		}); err != nil && !errors.Is(err, domain.ErrVMNotFound) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// settled reports whether every record is taken and on the hypervisor.
func settled(records []*domain.Snapshot, onHypervisor map[string]bool) bool {
	for _, s := range records {
		if !onHypervisor[s.Machine] || !s.Taken {
			return false
		}
	}
	return true
}
