package app

import (
	"context"
	"io"
	"time"

	"github.com/google/uuid"

	"limen/vm-service/internal/domain"
)

// Repository keeps VMs. Every write stores the VM's event in the same transaction (the outbox), so a
// change and its announcement never part.
//
// No transaction or lock is ever held across a hypervisor call (audited: create, power actions,
// resize, delete, observe, resync). Update's change runs inside the repository's transaction, under
// the VM's row lock, and so must stay pure: it decides from the row and the clock only, never calls
// the hypervisor, quota-service or anything else that can block. A use case claims the VM (a task, committed), calls the hypervisor
// with nothing held, and records the outcome in a second short transaction; create defines the domain
// before its insert's transaction begins. Every repository call is bounded by pgdb.Deadline.
type Repository interface {
	// Add stores a new VM; domain.ErrNameTaken when the owner already has a VM of that name.
	Add(ctx context.Context, vm *domain.VM) error
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

// UsageByOwner reads what several owners' VMs take in one query; an owner without VMs may be absent.
type UsageByOwner interface {
	UsageByOwner(ctx context.Context, ownerIDs []int64) (map[int64]domain.Usage, error)
}

// Media is media-service, which owns every VM's CD-ROM drive.
type Media interface {
	// Eject empties the VM's drive (an empty one stays empty), as media-service records and announces
	// every eject. Its errors are the caller's to read (domain.ErrMediaServiceDown when out of reach).
	Eject(ctx context.Context, vm uuid.UUID) error
}

// Reservations is quota-service, which keeps every user's limits and usage. A growth is reserved
// before anything is made, then committed once the VM's row is written or released when the change
// failed; a VM's usage is released once it is gone. Only Reserve's answer decides anything: a commit
// or release that does not arrive is repaired by quota-service from the VM events (and the
// reservation's expiry), so their errors are the caller's to log, never to fail a request with.
type Reservations interface {
	// Reserve holds the change's growth. A failure.Quota error with the message to show when it does
	// not fit; domain.ErrQuotaServiceDown when quota-service cannot be asked.
	Reserve(ctx context.Context, change domain.QuotaChange) error
	// Commit says the change was made: vm is its row as written.
	Commit(ctx context.Context, key string, vm *domain.VM) error
	// Release says the change was not made.
	Release(ctx context.Context, key string) error
	// ReleaseVM says vm is gone.
	ReleaseVM(ctx context.Context, vm *domain.VM) error
}

// ConsoleTickets keeps console tickets by the hash of their secret; the secret itself is never stored.
type ConsoleTickets interface {
	// Issue stores a new ticket (and forgets tickets long expired).
	Issue(ctx context.Context, hash []byte, t domain.ConsoleTicket) error
	// Redeem spends the ticket of hash, once: every later call, and a call with an unknown hash,
	// answers domain.ErrConsoleTicket. Whether it was still valid is the caller's to judge.
	Redeem(ctx context.Context, hash []byte) (domain.ConsoleTicket, error)
}

// Consoles opens a running machine's consoles. The stream carries the console's bytes both ways and
// ends when the machine stops; Close ends it early. Errors wrap contract.ErrMachineNotFound,
// contract.ErrHypervisorUnavailable, domain.ErrVMNotRunning or domain.ErrNoSerialConsole where they
// apply.
type Consoles interface {
	OpenConsole(ctx context.Context, id uuid.UUID, protocol domain.ConsoleProtocol) (io.ReadWriteCloser, error)
}

// Revoked reports whether an access token of the user, signed at its token version for its login
// (session), has been revoked since: the user changed role or approval, was deleted or logged out.
type Revoked func(userID, tokenVersion int64, sessionID string) bool

// MachineStats reads the counters of every running LIMEN machine in one call.
type MachineStats interface {
	Samples(ctx context.Context) (map[uuid.UUID]domain.MachineSample, error)
}

// MachineRuns remembers when each run of a machine was first seen, across processes and restarts.
type MachineRuns interface {
	// Seen records the runs (machine → run id) first seen at now and answers when each of them was
	// first seen, by any process; runs of machines not in running are forgotten.
	Seen(ctx context.Context, running map[uuid.UUID]int64, now time.Time) (map[uuid.UUID]time.Time, error)
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
