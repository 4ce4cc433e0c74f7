package app

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"

	"limen/vm-service/internal/domain"
)

// SnapshotRepository keeps VMs' snapshots beside the VMs.
type SnapshotRepository interface {
	// Update is Repository.Update with the VM's snapshots (those being taken included) read under
	// the same row lock: what change does to the VM and to them is stored in one transaction, with
	// the VM's event when its version moved, and an event for each snapshot taken or removed.
	Update(ctx context.Context, id uuid.UUID, change func(*domain.VM, *domain.Snapshots) error) (*domain.VM, error)
	// Get finds a snapshot, taken or being taken; domain.ErrSnapshotNotFound when there is none.
	Get(ctx context.Context, id int64) (*domain.Snapshot, error)
	// List returns a VM's snapshots (every VM's for vmID 0), those being taken included, oldest first.
	List(ctx context.Context, vmID int64) ([]*domain.Snapshot, error)
}

// ErrSnapshotMissing is a snapshot the hypervisor does not have (any more).
var ErrSnapshotMissing = errors.New("snapshot not found on the hypervisor")

// Restored is a machine as a restore left it: its persistent definition's CPU, memory and boot order
// (BootOrder empty: none LIMEN knows), and its run state.
type Restored struct {
	CPU       int
	MemoryMiB int
	BootOrder domain.BootOrder
	Status    domain.Status
}

// SnapshotHypervisor is a Hypervisor that also takes, restores and deletes its machines' snapshots.
// Each machine's snapshots are its own (names are per machine).
type SnapshotHypervisor interface {
	Hypervisor
	// TakeSnapshot saves the machine as snapshot name: its disk, with its memory when it runs or is
	// paused, and its definition. It reports the state captured.
	TakeSnapshot(ctx context.Context, id uuid.UUID, name string) (domain.Status, error)
	// RestoreSnapshot puts the machine back as snapshot name saved it: definition, disk and, for a
	// running or paused one, memory and run state. ErrSnapshotMissing when there is no such snapshot.
	RestoreSnapshot(ctx context.Context, id uuid.UUID, name string) (Restored, error)
	// DeleteSnapshot removes snapshot name and its data, the machine's current state untouched; a
	// missing one is not an error.
	DeleteSnapshot(ctx context.Context, id uuid.UUID, name string) error
	// SnapshotNames lists the machine's snapshots; contract.ErrMachineNotFound when there is no machine.
	SnapshotNames(ctx context.Context, id uuid.UUID) (map[string]bool, error)
}

// SnapshotView is a snapshot as the contract shows it, in answers and event payloads alike.
type SnapshotView struct {
	ID          int64     `json:"id"`
	VMID        int64     `json:"vm_id"`
	VMUUID      string    `json:"vm_uuid"`
	Name        string    `json:"name"`
	Description string    `json:"description"`
	State       string    `json:"state"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// SnapshotViewOf renders a snapshot for the outside world.
func SnapshotViewOf(s *domain.Snapshot) SnapshotView {
	return SnapshotView{ID: s.ID, VMID: s.VMID, VMUUID: s.VMUUID.String(), Name: s.Name, Description: s.Description,
		State: string(s.State), CreatedAt: s.CreatedAt, UpdatedAt: s.UpdatedAt}
}

// snapshotScope is repo whose Update hands its change the VM's snapshots too, read under the same row
// lock, in held: what the change (a task's outcome, say) does to them is stored in the same
// transaction as the VM. Tasks.finish and its retries record through it, so a snapshot's end and its
// VM's task end commit together or not at all.
type snapshotScope struct {
	Repository
	snapshots SnapshotRepository
	held      *domain.Snapshots
}

func (s *snapshotScope) Update(ctx context.Context, id uuid.UUID, change func(*domain.VM) error) (*domain.VM, error) {
	return s.snapshots.Update(ctx, id, func(vm *domain.VM, set *domain.Snapshots) error {
		s.held = set
		defer func() { s.held = nil }()
		return change(vm)
	})
}

// loadSnapshot is the ownership gate of snapshots: one of another user's VM, or one still being
// taken, is indistinguishable from a missing one.
func loadSnapshot(ctx context.Context, repo Repository, snapshots SnapshotRepository, caller Caller, id int64) (*domain.Snapshot, *domain.VM, error) {
	snap, err := snapshots.Get(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	vm, err := load(ctx, repo, caller, domain.ByUUID(snap.VMUUID))
	if errors.Is(err, domain.ErrVMNotFound) || err == nil && !snap.Taken {
		return nil, nil, domain.ErrSnapshotNotFound
	}
	if err != nil {
		return nil, nil, err
	}
	return snap, vm, nil
}

// claimForSnapshot claims VM id for task while its snapshot snapID is still there and taken and the
// VM passes fits (when given), all read under the VM's row lock.
func claimForSnapshot(ctx context.Context, snapshots SnapshotRepository, tasks *Tasks, replica uuid.UUID, now Clock,
	id uuid.UUID, task domain.Action, snapID int64, fits func(*domain.VM) error) (*domain.VM, error) {
	return snapshots.Update(ctx, id, func(vm *domain.VM, set *domain.Snapshots) error {
		tasks.judge(vm, replica, 1)
		if s := set.Find(snapID); s == nil || !s.Taken {
			return domain.ErrSnapshotNotFound
		}
		if fits != nil {
			if err := fits(vm); err != nil {
				return err
			}
		}
		return vm.BeginTask(task, replica, now())
	})
}

// observed reads the machine's state now and returns what records it on a VM; nothing when it
// cannot be read. A failed hypervisor call may have left the machine in any state: that state is
// what the VM shows.
func observed(ctx context.Context, hv Hypervisor, id uuid.UUID, now Clock) func(*domain.VM) {
	status, reason, err := observe(ctx, hv, id)
	if err != nil {
		return func(*domain.VM) {}
	}
	return func(vm *domain.VM) { vm.ObserveStatus(status, reason, now()) }
}
