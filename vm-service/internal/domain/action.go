package domain

import (
	"fmt"
	"strings"
	"time"

	"limen/libs/failure"
)

// Action is something a user asks a VM to do.
type Action string

const (
	ActionStart     Action = "start"
	ActionStop      Action = "stop"
	ActionRestart   Action = "restart"
	ActionDelete    Action = "delete"
	ActionUpdate    Action = "update"
	ActionPause     Action = "pause"
	ActionResume    Action = "resume"
	ActionForceStop Action = "force_stop"
)

// Actions lists every action in the order the contract's error message names them.
var Actions = []Action{ActionStart, ActionStop, ActionRestart, ActionDelete, ActionUpdate, ActionPause, ActionResume, ActionForceStop}

// ParseAction accepts the contract's action names.
func ParseAction(s string) (Action, error) {
	for _, a := range Actions {
		if string(a) == s {
			return a, nil
		}
	}
	names := make([]string, len(Actions))
	for i, a := range Actions {
		names[i] = string(a)
	}
	return "", failure.InvalidField("action", fmt.Sprintf("Invalid action: %s. Valid actions: %s", s, strings.Join(names, ", ")))
}

// powerTransitions says from which states each power action may start and where it leads.
var powerTransitions = map[Action]struct {
	from []Status
	to   Status
}{
	ActionStart:     {from: []Status{StatusStopped}, to: StatusRunning},
	ActionStop:      {from: []Status{StatusRunning, StatusPaused}, to: StatusStopped},
	ActionForceStop: {from: []Status{StatusRunning, StatusPaused, StatusError}, to: StatusStopped},
	ActionRestart:   {from: []Status{StatusRunning}, to: StatusRunning},
	ActionPause:     {from: []Status{StatusRunning}, to: StatusPaused},
	ActionResume:    {from: []Status{StatusPaused}, to: StatusRunning},
}

// IsPower reports whether the action changes the run state (as opposed to update and delete).
func (a Action) IsPower() bool {
	_, ok := powerTransitions[a]
	return ok
}

// BeginPower checks that the VM's state allows the power action and returns the state it will reach.
func (vm *VM) BeginPower(a Action) (Status, error) {
	t, ok := powerTransitions[a]
	if !ok {
		return "", failure.InvalidField("action", fmt.Sprintf("Invalid action: %s", a))
	}
	for _, s := range t.from {
		if vm.Status == s {
			return t.to, nil
		}
	}
	return "", failure.New(failure.Conflict, fmt.Sprintf("Cannot %s VM: VM is %s", strings.ReplaceAll(string(a), "_", " "), vm.Status))
}

// CompletePower records the state a power action reached.
func (vm *VM) CompletePower(to Status, now time.Time) {
	vm.ObserveStatus(to, "", now)
}
