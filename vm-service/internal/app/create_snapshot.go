package app

import (
	"context"
	"errors"

	"github.com/google/uuid"

	"limen/vm-service/internal/domain"
)

// CreateSnapshot asks for a snapshot of a VM the caller may see, in whatever state it is.
type CreateSnapshot struct {
	Caller      Caller
	Ref         domain.Ref
	Name        string
	Description string
}

// CreateSnapshotHandler claims the VM and holds the snapshot's name and place under the limit in one
// transaction under the VM's row lock, so that neither a concurrent action nor a concurrent snapshot
// can slip in; the hypervisor then takes the snapshot with nothing held, and a second transaction
// records the end of both (a failure gives the name and the place back).
type CreateSnapshotHandler struct {
	Repo       Repository
	Snapshots  SnapshotRepository
	Hypervisor SnapshotHypervisor
	// Limit is how many snapshots one VM may have.
	Limit int
	// Replica is this process, named in its claims.
	Replica uuid.UUID
	// Tasks is the registry of the tasks this process runs (see Tasks).
	Tasks *Tasks
	Now   Clock
}

// errSnapshotRecordLost is a snapshot whose record another process settled while it was being taken.
var errSnapshotRecordLost = errors.New("the snapshot's record was settled by another process while it was taken")

func (uc CreateSnapshotHandler) Handle(ctx context.Context, cmd CreateSnapshot) (*domain.Snapshot, error) {
	vm, err := load(ctx, uc.Repo, cmd.Caller, cmd.Ref)
	if err != nil {
		return nil, err
	}
	snap, err := domain.NewSnapshot(vm, cmd.Name, cmd.Description, uc.Now())
	if err != nil {
		return nil, err
	}
	end := uc.Tasks.begin(vm.UUID)
	claimed, err := uc.Snapshots.Update(ctx, vm.UUID, func(row *domain.VM, set *domain.Snapshots) error {
		uc.Tasks.judge(row, uc.Replica, 1)
		if err := row.BeginTask(domain.ActionSnapshot, uc.Replica, uc.Now()); err != nil {
			return err
		}
		// The definition the snapshot saves is the one recorded (resizes record theirs under a claim),
		// the state until the hypervisor reports the one it captured.
		snap.State, snap.CPU, snap.MemoryMiB = row.Status, row.CPU, row.MemoryMiB
		return set.Add(snap, uc.Limit)
	})
	if err != nil {
		end()
		return nil, err
	}
	// Claimed and committed: the work must finish and the task be released even when the client goes.
	ctx = context.WithoutCancel(ctx)
	scope := &snapshotScope{Repository: uc.Repo, snapshots: uc.Snapshots}
	var taken *domain.Snapshot
	_, err = uc.Tasks.detach(ctx, uc.Repo, 0, claimed, func(run context.Context) (*domain.VM, error) {
		opErr := context.Cause(run) // the process stopped before the work began
		var state domain.Status
		if opErr == nil {
			state, opErr = uc.Hypervisor.TakeSnapshot(run, vm.UUID, snap.Machine)
		}
		now := uc.Now
		// Whatever happened, the machine (paused while its memory was saved) is in the state it is.
		apply := observed(ctx, uc.Hypervisor, vm.UUID, now)
		outcome := func(vm *domain.VM) {
			apply(vm)
			if s := scope.held.Find(snap.ID); s != nil {
				s.Took(state, now())
				recorded := *s
				taken = &recorded
			}
		}
		if opErr != nil {
			outcome = func(vm *domain.VM) {
				apply(vm)
				scope.held.Remove(snap.ID)
			}
		}
		done, err := uc.Tasks.finish(ctx, scope, uc.Hypervisor, now, vm.UUID, claimed.Claim(), end, outcome)
		if opErr != nil {
			return nil, hypervisorError("snapshot", opErr)
		}
		return done, err
	})
	if err != nil {
		return nil, err
	}
	if taken == nil {
		return nil, errSnapshotRecordLost
	}
	return taken, nil
}
