package app

import (
	"time"

	"limen/vm-service/internal/domain"
)

// VMView is the VM as the contract shows it: in API answers, WebSocket pushes and event payloads alike,
// so the three never disagree.
type VMView struct {
	ID           int64     `json:"id"`
	UUID         string    `json:"uuid"`
	Name         string    `json:"name"`
	CPU          int       `json:"cpu"`
	Memory       int       `json:"memory"`
	Status       string    `json:"status"`
	StatusReason string    `json:"status_reason,omitempty"`
	OSType       string    `json:"os_type"`
	OwnerID      int64     `json:"owner_id"`
	DiskGB       int       `json:"disk_gb"`
	Host         string    `json:"host"`
	BootOrder    string    `json:"boot_order"`
	Task         *TaskView `json:"task,omitempty"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
}

// ViewOf renders a VM for the outside world.
func ViewOf(vm *domain.VM) VMView {
	return VMView{
		ID: vm.ID, UUID: vm.UUID.String(), Name: vm.Name, CPU: vm.CPU, Memory: vm.MemoryMiB,
		Status: string(vm.Status), StatusReason: vm.StatusReason, OSType: vm.OSType, OwnerID: vm.OwnerID,
		DiskGB: vm.DiskGB, Host: vm.Host, BootOrder: string(vm.BootOrder), Task: taskOf(vm),
		CreatedAt: vm.CreatedAt, UpdatedAt: vm.UpdatedAt,
	}
}

// TaskView is the action running on a VM, shown until it ends.
type TaskView struct {
	Action    string    `json:"action"`
	StartedAt time.Time `json:"started_at"`
}

// taskOf is the VM's running task; none when idle, or when the task's process is dead (it blocks
// nothing and is released).
func taskOf(vm *domain.VM) *TaskView {
	if !vm.Busy() {
		return nil
	}
	return &TaskView{Action: string(vm.Task), StartedAt: vm.TaskSince}
}
