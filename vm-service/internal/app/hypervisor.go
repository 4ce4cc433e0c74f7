// Package app holds vm-service's use cases and the ports they need.
package app

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"

	"limen/libs/contract"
	"limen/vm-service/internal/domain"
)

// MachineSpec is what the hypervisor needs to create a VM's domain and disk.
type MachineSpec struct {
	UUID      uuid.UUID
	Name      string
	CPU       int
	MemoryMiB int
	DiskGB    int
}

// ErrMachineState is an operation the machine's current state does not allow (starting a running one,
// stopping a stopped one): the state recorded was not the machine's.
var ErrMachineState = errors.New("operation invalid in the machine's state")

// Hypervisor runs VMs; libvirt is the truth for their run state. Its errors wrap
// contract.ErrMachineNotFound, contract.ErrHypervisorUnavailable or ErrMachineState where they apply.
type Hypervisor interface {
	// Create makes the disk and defines the domain; on failure nothing is left behind.
	Create(ctx context.Context, spec MachineSpec) error
	Start(ctx context.Context, id uuid.UUID) error
	// Shutdown asks the guest to power off (ACPI) and forces it off after timeout; forced reports which.
	Shutdown(ctx context.Context, id uuid.UUID, timeout time.Duration) (forced bool, err error)
	ForceStop(ctx context.Context, id uuid.UUID) error
	Pause(ctx context.Context, id uuid.UUID) error
	Resume(ctx context.Context, id uuid.UUID) error
	// Resize changes the persistent CPU and memory of a stopped domain.
	Resize(ctx context.Context, id uuid.UUID, cpu, memoryMiB int) error
	// SetBootOrder changes the boot devices of the persistent definition; a running domain keeps its
	// own until its next start.
	SetBootOrder(ctx context.Context, id uuid.UUID, order domain.BootOrder) error
	// Delete removes the domain (stopping it) and its disk; a missing one is not an error.
	Delete(ctx context.Context, id uuid.UUID) error
	// State reports one domain's run state; contract.ErrMachineNotFound when there is none.
	State(ctx context.Context, id uuid.UUID) (domain.Status, error)
	// OwnedSince says when this installation defined the domain; owned is false for a domain another
	// installation, or somebody by hand, defined.
	OwnedSince(ctx context.Context, id uuid.UUID) (created time.Time, owned bool, err error)
	// States reports the run state of every LIMEN domain in one call.
	States(ctx context.Context) (map[uuid.UUID]domain.Status, error)
}

// observe reads one machine's state as the status and reason a VM records: a machine the hypervisor
// does not have is Error.
func observe(ctx context.Context, h Hypervisor, id uuid.UUID) (domain.Status, string, error) {
	status, err := h.State(ctx, id)
	if errors.Is(err, contract.ErrMachineNotFound) {
		return domain.StatusError, domain.ReasonMachineMissing, nil
	}
	return status, "", err
}
