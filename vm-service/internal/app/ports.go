package app

import (
	"context"
	"time"

	"github.com/google/uuid"

	"limen/vm-service/internal/domain"
)

// Repository keeps VMs. Every write stores the VM's event in the same transaction (the outbox), so a
// change and its announcement never part.
//
// No transaction or lock is ever held across a hypervisor call (audited: create, power actions,
// resize, delete, observe, resync). The callbacks below (Add's admit, Update's change) run inside the
// repository's transaction, under the owner's advisory lock or the VM's row lock, and so must stay
// pure: they decide from the row and the clock only, never call the hypervisor, the quota service or
// anything else that can block. A use case claims the VM (a task, committed), calls the hypervisor
// with nothing held, and records the outcome in a second short transaction; create defines the domain
// before its insert's transaction begins. Every repository call is bounded by pgdb.Deadline.
type Repository interface {
	// Add stores a new VM once admit accepted its owner's usage; no other Add of the same owner runs
	// between the two, so concurrent creates cannot overrun a quota together. domain.ErrNameTaken
	// when the owner already has a VM of that name.
	Add(ctx context.Context, vm *domain.VM, admit func(domain.Usage) error) error
	// Usage is what an owner's VMs hold, stopped ones included.
	Usage(ctx context.Context, ownerID int64) (domain.Usage, error)
	// Get finds a VM by reference; domain.ErrVMNotFound when there is none.
	Get(ctx context.Context, ref domain.Ref) (*domain.VM, error)
	// List returns one owner's VMs, or everyone's when ownerID is 0, oldest first.
	List(ctx context.Context, ownerID int64) ([]*domain.VM, error)
	// NameTaken reports whether the owner has a VM of that name.
	NameTaken(ctx context.Context, ownerID int64, name string) (bool, error)
	// Update loads the VM under a row lock, lets change modify it and stores the result; an event is
	// written when the VM's version moved. An error from change leaves the VM as it was.
	Update(ctx context.Context, id uuid.UUID, change func(*domain.VM) error) (*domain.VM, error)
	// Remove deletes the VM and writes its deletion event.
	Remove(ctx context.Context, vm *domain.VM) error
}

// Quotas knows each user's limits.
type Quotas interface {
	LimitsFor(ctx context.Context, ownerID int64) (domain.Limits, error)
}

// Clock is the time source, fixed in tests.
type Clock func() time.Time

// Caller is who asks: the user of the access token, or a peer service acting for everyone.
type Caller struct {
	UserID int64
	Admin  bool
}

// mayAccess is the ownership rule: a user touches their own VMs only; others' are "not found".
func (c Caller) mayAccess(vm *domain.VM) bool { return vm.VisibleTo(c.UserID, c.Admin) }
