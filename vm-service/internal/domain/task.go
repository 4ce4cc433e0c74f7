package domain

import (
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"limen/libs/failure"
)

// LegacyTaskStaleAfter is when a task claimed without an owner (by a version of vm-service older than
// heartbeats) stops blocking the VM; every claim now names the process that holds it.
const LegacyTaskStaleAfter = 15 * time.Minute

// BeginTask marks the VM busy with an action run by process owner, so that concurrent requests (on
// any replica) never both reach the hypervisor: the second one sees the task and is refused, unless
// it may take that task over (Overrides). A task whose process stopped heartbeating (it crashed
// mid-operation) blocks nothing and is taken over. The task shows (see Busy), so it is a change.
func (vm *VM) BeginTask(a Action, owner uuid.UUID, now time.Time) error {
	if vm.Busy() && !a.Overrides(vm.Task) {
		return BusyWith(vm.Task)
	}
	vm.Task, vm.TaskOwner, vm.TaskSince, vm.TaskLive = a, owner, now, true
	vm.touch(now)
	return nil
}

// BusyWith is the refusal of an action while task runs on the VM.
func BusyWith(task Action) error {
	return failure.New(failure.Busy, fmt.Sprintf("VM is busy: %s in progress", strings.ReplaceAll(string(task), "_", " ")))
}

// overrides names, for an action, the running task it takes over instead of waiting behind it: a
// force stop ends a graceful stop at once (whoever waits for a guest that ignores ACPI gives up
// waiting), nothing else.
var overrides = map[Action]Action{ActionForceStop: ActionStop}

// Overrides reports whether action a takes over a running task instead of being refused.
func (a Action) Overrides(task Action) bool { return task != "" && overrides[a] == task }

// Overridable reports whether another action may take over a running task a.
func (a Action) Overridable() bool {
	for _, task := range overrides {
		if task == a {
			return true
		}
	}
	return false
}

// EndTask frees the VM for the next action; the task no longer shows, so it is a change.
func (vm *VM) EndTask(now time.Time) {
	vm.Task, vm.TaskOwner, vm.TaskSince, vm.TaskLive = "", uuid.Nil, time.Time{}, false
	vm.touch(now)
}

// Busy reports whether an action is running on the VM: there is a task and its process is alive.
func (vm *VM) Busy() bool { return vm.Task != "" && vm.TaskLive }

// HoldsTask reports whether the task in progress is still action a of process owner, that is, nobody
// took it over after owner's heartbeat lapsed.
func (vm *VM) HoldsTask(a Action, owner uuid.UUID) bool { return vm.Task == a && vm.TaskOwner == owner }

// Claim identifies one task: its action, the process that claimed it and when. A later claim of the
// same action by the same process (after the first was released or taken over) is another claim.
type Claim struct {
	Action Action
	Owner  uuid.UUID
	Since  time.Time
}

// Claim is the VM's task as a Claim; the zero Claim when it is idle.
func (vm *VM) Claim() Claim {
	if vm.Task == "" {
		return Claim{}
	}
	return Claim{Action: vm.Task, Owner: vm.TaskOwner, Since: vm.TaskSince}
}

// Holds reports whether the VM's task is still claim c (the zero Claim: whether it is idle).
func (vm *VM) Holds(c Claim) bool { return vm.Claim().Is(c) }

// Is reports whether c and o are the same claim. Times are compared to the microsecond, which is
// what the database keeps.
func (c Claim) Is(o Claim) bool {
	return c.Action == o.Action && c.Owner == o.Owner && c.Since.Sub(o.Since).Abs() < time.Microsecond
}
