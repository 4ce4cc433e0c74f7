package domain

import (
	"fmt"
	"strings"
	"time"
)

// TaskStaleAfter is when a task whose process died (crash mid-operation) stops blocking the VM. It is
// well above the longest operation, a graceful stop with its forced fallback.
const TaskStaleAfter = 15 * time.Minute

// BeginTask marks the VM busy with an action, so that concurrent requests (on any replica) never both
// reach the hypervisor: the second one sees the task and is refused.
func (vm *VM) BeginTask(a Action, now time.Time) error {
	if vm.Task != "" && now.Sub(vm.TaskSince) < TaskStaleAfter {
		return Conflict(fmt.Sprintf("VM is busy: %s in progress", strings.ReplaceAll(string(vm.Task), "_", " ")))
	}
	vm.Task, vm.TaskSince = a, now
	return nil
}

// EndTask frees the VM for the next action.
func (vm *VM) EndTask() { vm.Task, vm.TaskSince = "", time.Time{} }

// Busy reports whether an action is running on the VM.
func (vm *VM) Busy(now time.Time) bool {
	return vm.Task != "" && now.Sub(vm.TaskSince) < TaskStaleAfter
}
