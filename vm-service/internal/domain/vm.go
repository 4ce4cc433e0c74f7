// Package domain holds the VM aggregate of vm-service: its fields, the rules a VM obeys and the
// errors that break them. It knows nothing of HTTP, Postgres or libvirt.
package domain

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/google/uuid"

	"limen/libs/failure"
)

// Status is the run state the frontend shows.
type Status string

const (
	StatusRunning Status = "Running"
	StatusStopped Status = "Stopped"
	StatusPaused  Status = "Paused"
	StatusError   Status = "Error"
)

// Limits of a VM's configuration.
const (
	MinCPU, MaxCPU             = 1, 64
	MinMemoryMiB, MaxMemoryMiB = 64, 262144
	MaxNameLength              = 64
)

var namePattern = regexp.MustCompile(`^[a-zA-Z0-9 _.-]+$`)

// VM is one virtual machine. Postgres holds ownership and intent; libvirt is the truth for run state,
// which reaches Status through lifecycle events and resyncs.
type VM struct {
	ID        int64
	UUID      uuid.UUID
	OwnerID   int64
	Name      string
	CPU       int
	MemoryMiB int
	OSType    string
	DiskGB    int
	Status    Status
	// StatusReason says why a VM is in Error (for example its domain vanished from libvirt).
	StatusReason string
	Host         string
	// BootOrder is the order of the persistent definition; a running machine may still use the one it
	// started with.
	BootOrder BootOrder
	// Task is the action in progress ("" when idle), since TaskSince, run by the vm-service process
	// TaskOwner. TaskLive says whether that process still heartbeats (read together with the VM); a
	// task whose process died blocks nothing.
	Task      Action
	TaskSince time.Time
	TaskOwner uuid.UUID
	TaskLive  bool
	// Version grows by one with every change the frontend sees; events carry it as their sequence.
	Version   int64
	CreatedAt time.Time
	UpdatedAt time.Time
}

// NewVM checks a create request and returns the VM to be defined, Stopped until started.
func NewVM(ownerID int64, name string, cpu, memoryMiB int, os OSType, now time.Time) (*VM, error) {
	name = strings.TrimSpace(name)
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	if err := ValidateResources(cpu, memoryMiB); err != nil {
		return nil, err
	}
	return &VM{
		UUID:      uuid.New(),
		OwnerID:   ownerID,
		Name:      name,
		CPU:       cpu,
		MemoryMiB: memoryMiB,
		OSType:    os.Name,
		DiskGB:    os.DiskGB,
		Status:    StatusStopped,
		BootOrder: DefaultBootOrder,
		Version:   1,
		CreatedAt: now,
		UpdatedAt: now,
	}, nil
}

// ValidateName enforces 1–64 characters of letters, digits, space, '_', '.', '-'.
func ValidateName(name string) error {
	if name == "" {
		return failure.InvalidField("name", "Field 'name' is required")
	}
	if len(name) > MaxNameLength || !namePattern.MatchString(name) {
		return failure.InvalidField("name", fmt.Sprintf("Field 'name' must be 1-%d characters of letters, digits, spaces, '_', '.' or '-'", MaxNameLength))
	}
	return nil
}

// ValidateResources enforces the CPU and memory ranges.
func ValidateResources(cpu, memoryMiB int) error {
	if cpu < MinCPU || cpu > MaxCPU {
		return failure.InvalidField("cpu", fmt.Sprintf("Field 'cpu' must be between %d and %d", MinCPU, MaxCPU))
	}
	if memoryMiB < MinMemoryMiB || memoryMiB > MaxMemoryMiB {
		return failure.InvalidField("memory", fmt.Sprintf("Field 'memory' must be between %d and %d MiB", MinMemoryMiB, MaxMemoryMiB))
	}
	return nil
}

// VisibleTo reports whether a caller may see and act on the VM: its owner, or an admin.
func (vm *VM) VisibleTo(userID int64, isAdmin bool) bool {
	return isAdmin || vm.OwnerID == userID
}

// ObserveStatus records the run state libvirt reports; it returns false when nothing changed.
func (vm *VM) ObserveStatus(status Status, reason string, now time.Time) bool {
	if vm.Status == status && vm.StatusReason == reason {
		return false
	}
	vm.Status, vm.StatusReason = status, reason
	vm.touch(now)
	return true
}

// Resize sets new CPU and memory; the VM must be stopped so the guest never sees hardware vanish.
func (vm *VM) Resize(cpu, memoryMiB int, now time.Time) error {
	if err := ValidateResources(cpu, memoryMiB); err != nil {
		return err
	}
	if vm.Status != StatusStopped {
		return failure.New(failure.Conflict, fmt.Sprintf("Cannot update VM: VM must be Stopped (status: %s)", vm.Status))
	}
	vm.CPU, vm.MemoryMiB = cpu, memoryMiB
	vm.touch(now)
	return nil
}

// Resized records CPU and memory the hypervisor has taken, whatever the VM's state is now (a resize
// whose end is recorded late, after the VM was started meanwhile).
func (vm *VM) Resized(cpu, memoryMiB int, now time.Time) {
	if vm.CPU == cpu && vm.MemoryMiB == memoryMiB {
		return
	}
	vm.CPU, vm.MemoryMiB = cpu, memoryMiB
	vm.touch(now)
}

func (vm *VM) touch(now time.Time) {
	vm.Version++
	vm.UpdatedAt = now
}

// ReasonMachineMissing is the Error reason of a VM whose domain vanished from the hypervisor.
const ReasonMachineMissing = "domain not found on the hypervisor"
