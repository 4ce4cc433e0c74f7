package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"limen/vm-service/internal/domain"
)

// ChangePower asks for a power action (start, stop, restart, pause, resume, force_stop) on a VM the
// caller may see.
type ChangePower struct {
	Caller Caller
	Ref    domain.Ref
	Action domain.Action
	// Wait is how long the caller waits for the action's end (zero: until it ends). An action still
	// running then goes on in the background, and Handle returns the VM as claimed: busy with it.
	Wait time.Duration
}

// ChangePowerHandler claims the VM with a task first, so a second request while the hypervisor works
// is refused instead of racing it; a force stop takes over a graceful stop instead (domain.Overrides).
type ChangePowerHandler struct {
	Repo       Repository
	Hypervisor Hypervisor
	// StopTimeout is how long a guest gets to power off on ACPI before it is forced off.
	StopTimeout time.Duration
	// Replica is this process: its claims block others as long as its heartbeat lasts.
	Replica uuid.UUID
	// Tasks is the registry of the tasks this process runs (see Tasks).
	Tasks *Tasks
	Now   Clock
}

func (uc ChangePowerHandler) Handle(ctx context.Context, cmd ChangePower) (*domain.VM, error) {
	action := cmd.Action
	vm, err := load(ctx, uc.Repo, cmd.Caller, cmd.Ref)
	if err != nil {
		return nil, err
	}
	end := uc.Tasks.begin(vm.UUID)
	// The machine's state decides, not a recorded status that may be stale (an end never recorded, a
	// claim that lapsed with its process, a missed event). Read after the row, it is applied only to a
	// row still at the version read and without a live task: a result recorded in between is newer.
	quiet := uc.Tasks.alone(vm.UUID)
	status, reason, err := observe(ctx, uc.Hypervisor, vm.UUID)
	if err != nil {
		end()
		return nil, hypervisorError(string(action), err)
	}
	var target domain.Status
	var refused error
	var prior domain.Claim
	claimed, err := uc.Repo.Update(ctx, vm.UUID, func(row *domain.VM) error {
		uc.Tasks.judge(row, uc.Replica, 1)
		refreshed := refresh(row, vm.Version, quiet, status, reason, uc.Now())
		if target, refused = row.BeginPower(action); refused != nil {
			if refreshed {
				return nil // the refresh is kept: the answer names the state the VM is shown in
			}
			return refused
		}
		prior = domain.Claim{}
		if row.Busy() {
			prior = row.Claim() // taken over, if BeginTask allows it
		}
		return row.BeginTask(action, uc.Replica, uc.Now())
	})
	if err == nil && refused != nil {
		err = refused
	}
	if err != nil {
		end()
		return nil, err
	}
	// The claim's transaction has committed (and with it a takeover, in one step: no third action
	// can claim the VM in between): no transaction or lock is held while the hypervisor works. The
	// work must finish and the task be released even when the client goes away.
	ctx = context.WithoutCancel(ctx)
	return uc.Tasks.detach(ctx, uc.Repo, cmd.Wait, claimed, func(run context.Context) (*domain.VM, error) {
		return uc.work(ctx, run, vm.UUID, action, target, claimed.Claim(), prior, end)
	})
}

// work runs the claimed action c and records its end; prior is the task it took over, if any.
func (uc ChangePowerHandler) work(ctx, run context.Context, id uuid.UUID, action domain.Action, target domain.Status,
	c, prior domain.Claim, end func()) (*domain.VM, error) {
	hold := func() {}
	if prior.Action != "" {
		hold = uc.Tasks.override(id, prior, action, prior.Owner == uc.Replica)
	}
	opErr := context.Cause(run) // taken over or shut down before it began
	if opErr == nil {
		opErr = uc.run(run, id, action)
	}
	if run.Err() != nil && !errors.Is(context.Cause(run), errShutdown) {
		// Taken over: the action that took the VM reports the outcome; this one records nothing.
		end()
		return nil, context.Cause(run)
	}
	if prior.Action != "" && errors.Is(opErr, ErrMachineState) {
		opErr = nil // the stop taken over had the guest off already: what the force stop is for
	}
	hold()
	now := uc.Now
	outcome := func(vm *domain.VM) { vm.CompletePower(target, now()) }
	if opErr != nil {
		// Whatever failed, the machine's state is what it is: read it for the record and the answer.
		outcome = func(*domain.VM) {}
		if status, reason, err := observe(ctx, uc.Hypervisor, id); err == nil {
			outcome = func(vm *domain.VM) { vm.ObserveStatus(status, reason, now()) }
		}
	}
	done, err := uc.Tasks.finish(ctx, uc.Repo, uc.Hypervisor, now, id, c, end, outcome)
	if opErr != nil {
		// Refused by the machine's state (the recorded one was stale): the contract's 409, with the state.
		if errors.Is(opErr, ErrMachineState) {
			if err != nil {
				return nil, err
			}
			if _, refused := done.BeginPower(action); refused != nil {
				return nil, refused
			}
		}
		return nil, hypervisorError(string(action), opErr)
	}
	return done, err
}

func (uc ChangePowerHandler) run(ctx context.Context, id uuid.UUID, action domain.Action) error {
	h := uc.Hypervisor
	switch action {
	case domain.ActionStart:
		return h.Start(ctx, id)
	case domain.ActionStop:
		_, err := h.Shutdown(ctx, id, uc.StopTimeout)
		return err
	case domain.ActionRestart:
		// A cold restart (power off, then on) works for every guest, with or without ACPI support, and
		// applies a changed definition, which an in-guest reboot would not.
		if _, err := h.Shutdown(ctx, id, uc.StopTimeout); err != nil {
			return err
		}
		return h.Start(ctx, id)
	case domain.ActionPause:
		return h.Pause(ctx, id)
	case domain.ActionResume:
		return h.Resume(ctx, id)
	case domain.ActionForceStop:
		return h.ForceStop(ctx, id)
	}
	return fmt.Errorf("%s is not a power action", action)
}

// refresh brings a row about to be claimed up to date, unless a live task holds it: a dead task is
// released (its work is over, see Tasks), and the machine's status, read after the row was at version
// read, is recorded if the row is still at that version (otherwise a newer result was recorded since)
// and quiet (no other task of this process was running on the VM when it was read, which might have
// changed the machine after the reading). It reports whether it changed the row.
func refresh(row *domain.VM, read int64, quiet bool, status domain.Status, reason string, now time.Time) bool {
	if row.Busy() {
		return false
	}
	changed := row.Task != ""
	if changed {
		row.EndTask(now)
	}
	if quiet && row.Version == read && row.ObserveStatus(status, reason, now) {
		changed = true
	}
	return changed
}
