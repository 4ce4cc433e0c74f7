package domain

import (
	"fmt"
	"time"

	"github.com/google/uuid"

	"limen/libs/contract"
	"limen/libs/failure"
)

// State is where a reservation stands.
type State string

// A reservation is pending from its admission until it is committed (its change was made), released
// (it was not) or expired (its caller never said).
const (
	Pending   State = contract.ReservationPending
	Committed State = contract.ReservationCommitted
	Released  State = contract.ReservationReleased
	Expired   State = contract.ReservationExpired
)

// Reservation is a change of one user's usage for one VM, admitted and held until its caller commits
// or releases it. Its key makes it idempotent: the same key asked twice counts once.
type Reservation struct {
	Key       string
	UserID    int64
	VM        uuid.UUID
	Change    Resources
	State     State
	ExpiresAt time.Time
}

// NewReservation checks a caller's request. Each part of the change is bounded by the largest limit
// of its resource, either way.
func NewReservation(key string, userID int64, vm string, change Resources) (Reservation, error) {
	if !validKey(key) {
		return Reservation{}, failure.InvalidField("key", fmt.Sprintf("Field 'key' must be 1 to %d letters, digits, '.', '_', ':' or '-'", contract.MaxReservationKey))
	}
	if err := ValidUserID(userID); err != nil {
		return Reservation{}, err
	}
	id, err := uuid.Parse(vm)
	if err != nil {
		return Reservation{}, failure.InvalidField("vm_uuid", "Field 'vm_uuid' must be a UUID")
	}
	for _, f := range []struct {
		name  string
		value int
		bound int
	}{
		{"vms", change.VMs, MaxVMsLimit},
		{"cpu", change.CPU, MaxCPULimit},
		{"memory", change.MemoryMiB, MaxMemoryLimit},
	} {
		if f.value < -f.bound || f.value > f.bound {
			return Reservation{}, failure.InvalidField(f.name, fmt.Sprintf("Field '%s' must be between %d and %d", f.name, -f.bound, f.bound))
		}
	}
	return Reservation{Key: key, UserID: userID, VM: id, Change: change, State: Pending}, nil
}

// ValidUserID refuses a user id no user can have.
func ValidUserID(id int64) error {
	if id < 1 {
		return failure.InvalidField("user_id", "Field 'user_id' must be at least 1")
	}
	return nil
}

// ParseVMUUID reads a VM uuid named in a path.
func ParseVMUUID(s string) (uuid.UUID, error) {
	id, err := uuid.Parse(s)
	if err != nil {
		return uuid.Nil, failure.New(failure.Invalid, "Invalid VM uuid: "+s)
	}
	return id, nil
}

func validKey(key string) bool {
	if key == "" || len(key) > contract.MaxReservationKey {
		return false
	}
	for _, r := range key {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == ':' || r == '-') {
			return false
		}
	}
	return true
}

// Hold is what the reservation takes from the user's quota while it is pending.
func (r Reservation) Hold() Resources {
	if r.State != Pending {
		return Resources{}
	}
	return r.Change.Growth()
}

// Creates reports whether the reservation is for a new VM: once that VM exists, the reservation has
// served its purpose whatever its caller says.
func (r Reservation) Creates() bool { return r.Change.VMs > 0 }

// Repeat answers the same request asked again under r's key: r itself while it stands (pending or
// committed), an error when the key was used for another request or its reservation has ended
// without a change.
func (r Reservation) Repeat(asked Reservation) (Reservation, error) {
	if r.UserID != asked.UserID || r.VM != asked.VM || r.Change != asked.Change {
		return Reservation{}, ErrKeyReused
	}
	switch r.State {
	case Released:
		return Reservation{}, ErrReservationReleased
	case Expired:
		return Reservation{}, ErrReservationExpired
	}
	return r, nil
}

// Commit is r once its change was made. A late commit (r expired meanwhile) is taken all the same:
// the change exists, and usage must follow it.
func (r Reservation) Commit() (Reservation, error) {
	switch r.State {
	case Released:
		return Reservation{}, ErrReservationReleased
	case Pending, Expired:
		r.State = Committed
	}
	return r, nil
}

// Release is r once its change was given up. Releasing twice, or an expired reservation, changes
// nothing.
func (r Reservation) Release() (Reservation, error) {
	switch r.State {
	case Committed:
		return Reservation{}, ErrReservationCommitted
	case Pending:
		r.State = Released
	}
	return r, nil
}

// VMState is a VM's size as its service last wrote it. Version grows with every write of the VM (it
// is the sequence of the VM's events), so the newer of two reports wins whichever arrives last.
type VMState struct {
	UUID      uuid.UUID
	OwnerID   int64
	CPU       int
	MemoryMiB int
	Version   int64
}

// NewVMState checks a commit's report of the VM.
func NewVMState(vm uuid.UUID, owner int64, cpu, memory int, version int64) (VMState, error) {
	switch {
	case cpu < 0 || cpu > MaxCPULimit:
		return VMState{}, failure.InvalidField("cpu", fmt.Sprintf("Field 'cpu' must be between 0 and %d", MaxCPULimit))
	case memory < 0 || memory > MaxMemoryLimit:
		return VMState{}, failure.InvalidField("memory", fmt.Sprintf("Field 'memory' must be between 0 and %d", MaxMemoryLimit))
	case version < 1:
		return VMState{}, failure.InvalidField("version", "Field 'version' must be at least 1")
	}
	return VMState{UUID: vm, OwnerID: owner, CPU: cpu, MemoryMiB: memory, Version: version}, nil
}

// Usage is what the VM takes from its owner's quota.
func (v VMState) Usage() Resources { return Resources{VMs: 1, CPU: v.CPU, MemoryMiB: v.MemoryMiB} }
