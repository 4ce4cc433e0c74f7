package app

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"limen/libs/contract"
	"limen/vm-service/internal/domain"
)

// Resync asks for one repair of what lifecycle events missed (a dropped connection, a restart of either
// side).
type Resync struct{}

// ResyncHandler repairs with one bulk read of the hypervisor: statuses converge, VMs whose domain
// vanished become Error, deletes interrupted after the hypervisor let go are finished, and domains this
// installation defined but never recorded (a crash between the two steps of a create) are removed once
// OrphanGrace has passed.
//
// A reading is never applied when it may be older than the row it would change. The rows are read
// first, the hypervisor second, so every row read was recorded before the hypervisor was asked: a VM
// created in between has no row in the reading (its domain is a young orphan, left alone), never a
// row without a domain. A VM's reading is applied only under its row lock and only if the row still
// has the version read and no live task: a start, stop or create finishing in between changed the
// version, and its result stands until the next resync reads afresh.
//
// A task is released once it is dead: its process stopped heartbeating, or it is this process's and
// not in its registry (Tasks) when the rows have been read, so its work had ended before the
// hypervisor was read (its end went unrecorded, say, while the database was out of reach).
type ResyncHandler struct {
	Repo       Repository
	Hypervisor Hypervisor
	// Replica and Tasks are this process and the tasks it runs.
	Replica uuid.UUID
	Tasks   *Tasks
	// OrphanGrace is how long a domain may exist without its row: far longer than a create takes
	// between defining the domain and recording it.
	OrphanGrace time.Duration
	Now         Clock
	Log         *slog.Logger
	// Snapshots settles the VMs' snapshot records from the same readings (nil: not kept).
	Snapshots *ResyncSnapshotsHandler
}

func (uc ResyncHandler) Handle(ctx context.Context, _ Resync) error {
	vms, err := uc.Repo.List(ctx, 0)
	if err != nil {
		return err
	}
	for _, read := range vms {
		uc.Tasks.judge(read, uc.Replica, 0)
	}
	states, err := uc.Hypervisor.States(ctx)
	if err != nil {
		return err
	}
	var errs []error
	known := make(map[uuid.UUID]bool, len(vms))
	for _, read := range vms {
		known[read.UUID] = true
		status, present := states[read.UUID]
		reason := ""
		if !present {
			status, reason = domain.StatusError, domain.ReasonMachineMissing
		}
		if read.Busy() && read.Task != domain.ActionDelete {
			continue // the action in progress reports its own outcome
		}
		if read.Status == status && read.StatusReason == reason && read.Task == "" {
			continue
		}
		if read.Task == domain.ActionDelete && !present {
			if err := uc.Repo.Remove(ctx, read); err != nil && !errors.Is(err, domain.ErrVMNotFound) {
				errs = append(errs, err)
			}
			continue
		}
		if _, err := uc.Repo.Update(ctx, read.UUID, func(vm *domain.VM) error {
			uc.Tasks.judge(vm, uc.Replica, 0)
			if vm.Version != read.Version || !vm.Holds(read.Claim()) || vm.Busy() {
				return nil // changed since it was read: the reading may be older than the change
			}
			if vm.Task != "" {
				uc.Log.WarnContext(ctx, "releasing an abandoned task", "vm_uuid", vm.UUID, "task", vm.Task)
				vm.EndTask(uc.Now())
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
	if uc.Snapshots != nil {
		errs = append(errs, uc.Snapshots.Handle(ctx, ResyncSnapshots{VMs: vms, States: states}))
	}
	return errors.Join(errs...)
}

func (uc ResyncHandler) removeOrphan(ctx context.Context, id uuid.UUID) error {
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
	if errors.Is(err, contract.ErrMachineNotFound) {
		return nil
	}
	return err
}
