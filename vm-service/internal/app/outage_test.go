package app_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"limen/libs/failure"
	"limen/vm-service/internal/app"
	"limen/vm-service/internal/domain"
)

// downAfterTheHypervisor makes the database unreachable the moment the hypervisor has done its work,
// once: the claim was recorded, the end of the task cannot be.
func downAfterTheHypervisor(w *world) {
	w.hv.mu.Lock()
	defer w.hv.mu.Unlock()
	w.hv.afterOp = func() {
		w.repo.down.Store(true)
		w.hv.mu.Lock()
		w.hv.afterOp = nil
		w.hv.mu.Unlock()
	}
}

// settled waits until the VM holds no task and shows its machine's state.
func (w *world) settled(t *testing.T, id uuid.UUID, within time.Duration) *domain.VM {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		got, err := w.repo.Get(context.Background(), domain.ByUUID(id))
		if err == nil && got.Task == "" && got.Status == w.hv.state(id) {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("not settled within %s: %+v (%v); the machine is %s", within, got, err, w.hv.state(id))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// An action that reached the hypervisor while the database went away: its end could not be recorded.
// Once the database is back, the task is released and the status is the machine's, without anybody
// asking; meanwhile the VM answers nothing but its true state.
func TestTaskEnd_UnrecordedDuringAnOutage_IsRecordedWhenTheDatabaseIsBack(t *testing.T) {
	cases := []struct {
		action  domain.Action
		running bool // the VM runs before the action
		want    domain.Status
	}{
		{domain.ActionStart, false, domain.StatusRunning},
		{domain.ActionStop, true, domain.StatusStopped},
		{domain.ActionForceStop, true, domain.StatusStopped},
		{domain.ActionRestart, true, domain.StatusRunning},
		{domain.ActionPause, true, domain.StatusPaused},
	}
	for _, c := range cases {
		t.Run(string(c.action), func(t *testing.T) {
			w := newWorld()
			vm := w.vm(t, alice, "web")
			ctx := context.Background()
			if c.running {
				if _, err := w.power.Handle(ctx, app.ChangePower{Caller: alice, Ref: domain.ByUUID(vm.UUID), Action: domain.ActionStart}); err != nil {
					t.Fatal(err)
				}
			}
			downAfterTheHypervisor(w)
			if _, err := w.power.Handle(ctx, app.ChangePower{Caller: alice, Ref: domain.ByUUID(vm.UUID), Action: c.action}); !errors.Is(err, errDown) {
				t.Fatalf("%s with the database gone: %v", c.action, err)
			}
			if w.hv.state(vm.UUID) != c.want {
				t.Fatalf("the machine is %s", w.hv.state(vm.UUID))
			}
			time.Sleep(50 * time.Millisecond) // retries meet the outage
			w.repo.down.Store(false)
			got := w.settled(t, vm.UUID, 2*time.Second)
			if got.Status != c.want {
				t.Fatalf("recorded %s, want %s", got.Status, c.want)
			}
			// The next action is judged by the true state, not refused as busy.
			if _, err := w.power.Handle(ctx, app.ChangePower{Caller: alice, Ref: domain.ByUUID(vm.UUID), Action: c.action}); err != nil &&
				(failure.KindOf(err) != failure.Conflict || strings.HasPrefix(err.Error(), "VM is busy")) {
				t.Fatalf("%s again: %v", c.action, err)
			}
		})
	}
}

// The same for a create with "start": true: answered 201 (Stopped, the start failed as far as it
// knows), the VM soon shows Running, which it is.
func TestCreateAndStart_StartUnrecordedDuringAnOutage_IsRecordedWhenTheDatabaseIsBack(t *testing.T) {
	w := newWorld()
	downAfterTheHypervisor(w)
	vm, err := w.create.Handle(context.Background(), app.CreateVM{Caller: alice, Name: "web", CPU: 1, MemoryMiB: 64, OSType: "ubuntu-server", Start: true})
	if err != nil {
		t.Fatal(err)
	}
	w.repo.down.Store(false)
	if got := w.settled(t, vm.UUID, 2*time.Second); got.Status != domain.StatusRunning {
		t.Fatalf("recorded %s", got.Status)
	}
}

// Until its end is recorded, a task this process no longer runs blocks nothing: a retried action sees
// the machine's state (409 with it, as the contract has it, instead of "VM is busy" for ever), and the
// resync releases it and records the machine's state.
func TestTask_ThisProcessNoLongerRuns_BlocksNothing_ResyncReleasesIt(t *testing.T) {
	for _, via := range []string{"retried action", "resync"} {
		t.Run(via, func(t *testing.T) {
			w := newWorld()
			w.tasks.RetryMin, w.tasks.RetryMax = time.Hour, time.Hour // only the path under test repairs
			t.Cleanup(w.tasks.Close)
			vm := w.vm(t, alice, "web")
			ctx := context.Background()
			downAfterTheHypervisor(w)
			if _, err := w.power.Handle(ctx, app.ChangePower{Caller: alice, Ref: domain.ByUUID(vm.UUID), Action: domain.ActionStart}); !errors.Is(err, errDown) {
				t.Fatalf("start: %v", err)
			}
			w.repo.down.Store(false)
			if got, _ := w.repo.Get(ctx, domain.ByUUID(vm.UUID)); got.Task != domain.ActionStart || got.Status != domain.StatusStopped {
				t.Fatalf("before the repair: %+v", got)
			}
			if via == "resync" {
				if err := w.resync().Handle(ctx, app.Resync{}); err != nil {
					t.Fatal(err)
				}
			} else {
				_, err := w.power.Handle(ctx, app.ChangePower{Caller: alice, Ref: domain.ByUUID(vm.UUID), Action: domain.ActionStart})
				if failure.KindOf(err) != failure.Conflict || err.Error() != "Cannot start VM: VM is Running" {
					t.Fatalf("start again: %v", err)
				}
			}
			got, _ := w.repo.Get(ctx, domain.ByUUID(vm.UUID))
			if got.Task != "" || got.Status != domain.StatusRunning {
				t.Fatalf("after the %s: %+v", via, got)
			}
			if _, err := w.power.Handle(ctx, app.ChangePower{Caller: alice, Ref: domain.ByUUID(vm.UUID), Action: domain.ActionForceStop}); err != nil {
				t.Fatalf("force stop: %v", err)
			}
		})
	}
}

// A task this process still runs is live whatever the heartbeat says: neither the resync nor
// another request takes it over.
func TestTask_ThisProcessStillRuns_StaysLive(t *testing.T) {
	w := newWorld()
	vm := w.vm(t, alice, "web")
	ctx := context.Background()
	w.hv.gate = make(chan struct{})
	done := make(chan error)
	go func() {
		_, err := w.power.Handle(ctx, app.ChangePower{Caller: alice, Ref: domain.ByUUID(vm.UUID), Action: domain.ActionStart})
		done <- err
	}()
	for w.hv.count("start") == 0 {
		time.Sleep(time.Millisecond)
	}
	w.repo.mu.Lock()
	w.repo.dead[replica] = true // its heartbeat lapsed (the database was out of reach), it still works
	w.repo.mu.Unlock()
	if err := w.resync().Handle(ctx, app.Resync{}); err != nil {
		t.Fatal(err)
	}
	if got, _ := w.repo.Get(ctx, domain.ByUUID(vm.UUID)); got.Task != domain.ActionStart {
		t.Fatalf("the resync released a running task: %+v", got)
	}
	if _, err := w.power.Handle(ctx, app.ChangePower{Caller: alice, Ref: domain.ByUUID(vm.UUID), Action: domain.ActionStart}); err == nil || err.Error() != "VM is busy: start in progress" {
		t.Fatalf("start while the start runs: %v", err)
	}
	close(w.hv.gate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// A recorded status that is stale (the machine changed while nobody could record it) does not make
// an action fail on the hypervisor: the machine's state decides, and the answer is the contract's 409
// with it; the record is corrected on the way.
func TestPower_StaleStatus_AnswersWithTheMachinesState(t *testing.T) {
	cases := []struct {
		action   domain.Action
		recorded domain.Status
		machine  domain.Status
		msg      string
	}{
		{domain.ActionForceStop, domain.StatusRunning, domain.StatusStopped, "Cannot force stop VM: VM is Stopped"},
		{domain.ActionStop, domain.StatusRunning, domain.StatusStopped, "Cannot stop VM: VM is Stopped"},
		{domain.ActionStart, domain.StatusStopped, domain.StatusRunning, "Cannot start VM: VM is Running"},
		{domain.ActionResume, domain.StatusPaused, domain.StatusRunning, "Cannot resume VM: VM is Running"},
	}
	for _, c := range cases {
		t.Run(string(c.action), func(t *testing.T) {
			w := newWorld()
			vm := w.vm(t, alice, "web")
			ctx := context.Background()
			if _, err := w.repo.Update(ctx, vm.UUID, func(vm *domain.VM) error { vm.Status = c.recorded; return nil }); err != nil {
				t.Fatal(err)
			}
			w.hv.set(vm.UUID, c.machine)
			_, err := w.power.Handle(ctx, app.ChangePower{Caller: alice, Ref: domain.ByUUID(vm.UUID), Action: c.action})
			if failure.KindOf(err) != failure.Conflict || err.Error() != c.msg {
				t.Fatalf("%s: %v; want 409 %q", c.action, err, c.msg)
			}
			if got, _ := w.repo.Get(ctx, domain.ByUUID(vm.UUID)); got.Status != c.machine || got.Task != "" {
				t.Fatalf("recorded: %+v", got)
			}
		})
	}

	// The machine changes between the reading and the call: libvirt's refusal answers the same way.
	w := newWorld()
	vm := w.vm(t, alice, "web")
	w.hv.beforeOp = func() { w.hv.set(vm.UUID, domain.StatusRunning) }
	_, err := w.power.Handle(context.Background(), app.ChangePower{Caller: alice, Ref: domain.ByUUID(vm.UUID), Action: domain.ActionStart})
	if failure.KindOf(err) != failure.Conflict || err.Error() != "Cannot start VM: VM is Running" {
		t.Fatalf("start refused by the machine: %v", err)
	}
	if got, _ := w.repo.Get(context.Background(), domain.ByUUID(vm.UUID)); got.Status != domain.StatusRunning || got.Task != "" {
		t.Fatalf("recorded: %+v", got)
	}
}

// A resize and a delete whose ends could not be recorded are recorded once the database is back.
func TestResizeAndDelete_EndUnrecordedDuringAnOutage_IsRecordedLater(t *testing.T) {
	w := newWorld()
	vm := w.vm(t, alice, "web")
	ctx := context.Background()
	resize := app.ResizeVMHandler{Repo: w.repo, Quota: w.quota, Hypervisor: w.hv, Replica: replica, Tasks: w.tasks, Now: clock}
	downAfterTheHypervisor(w)
	if _, err := resize.Handle(ctx, size(alice, domain.ByUUID(vm.UUID), 2, 128)); !errors.Is(err, errDown) {
		t.Fatalf("resize: %v", err)
	}
	w.repo.down.Store(false)
	if got := w.settled(t, vm.UUID, 2*time.Second); got.CPU != 2 || got.MemoryMiB != 128 {
		t.Fatalf("after the outage: %+v", got)
	}

	del := app.DeleteVMHandler{Repo: w.repo, Hypervisor: w.hv, Quota: w.quota, Replica: replica, Tasks: w.tasks, Now: clock}
	w.hv.mu.Lock()
	w.hv.deleteErr = errBoom
	w.hv.mu.Unlock()
	w.repo.down.Store(false)
	// The hypervisor fails the delete and the database goes away before the task is released.
	w.hv.inTx = func() bool {
		w.repo.down.Store(true)
		return false
	}
	if _, err := del.Handle(ctx, app.DeleteVM{Caller: alice, Ref: domain.ByUUID(vm.UUID)}); !errors.Is(err, errBoom) {
		t.Fatalf("delete: %v", err)
	}
	w.hv.mu.Lock()
	w.hv.inTx, w.hv.deleteErr = nil, nil
	w.hv.mu.Unlock()
	w.repo.down.Store(false)
	w.settled(t, vm.UUID, 2*time.Second)

	// The hypervisor deletes, the record cannot be removed: it goes once the database is back.
	w.hv.mu.Lock()
	w.hv.inTx = func() bool {
		if w.hv.calls[len(w.hv.calls)-1] == "delete" {
			w.repo.down.Store(true)
		}
		return false
	}
	w.hv.mu.Unlock()
	if _, err := del.Handle(ctx, app.DeleteVM{Caller: alice, Ref: domain.ByUUID(vm.UUID)}); !errors.Is(err, errDown) {
		t.Fatalf("delete: %v", err)
	}
	w.repo.down.Store(false)
	deadline := time.Now().Add(2 * time.Second)
	for {
		if _, err := w.repo.Get(ctx, domain.ByUUID(vm.UUID)); errors.Is(err, domain.ErrVMNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the deleted VM's record stayed")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
