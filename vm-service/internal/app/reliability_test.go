package app_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"limen/libs/failure"
	"limen/vm-service/internal/app"
	"limen/vm-service/internal/domain"
)

// betweenReads runs work once, right after the resync's n-th read (1 or 2) of the rows or the
// hypervisor, whichever order it reads them in.
func betweenReads(w *world, n int, work func()) {
	var mu sync.Mutex
	reads, done := 0, false
	hook := func() {
		mu.Lock()
		reads++
		run := reads == n && !done
		done = done || run
		mu.Unlock()
		if run {
			work()
		}
	}
	w.repo.afterList, w.hv.afterStates = hook, hook
}

func (w *world) resync() app.ResyncHandler {
	return app.ResyncHandler{Repo: w.repo, Hypervisor: w.hv, Replica: replica, Tasks: w.tasks, OrphanGrace: 10 * time.Minute, Now: clock, Log: quiet}
}

// A VM created while the resync reads is neither marked Error (its domain missing from an older
// reading) nor removed as an orphan (its row missing from an older reading).
func TestResync_CreateBetweenItsReads_IsNeitherErrorNorOrphan(t *testing.T) {
	for _, n := range []int{1, 2} {
		t.Run(fmt.Sprintf("after read %d", n), func(t *testing.T) {
			w := newWorld()
			w.vm(t, alice, "existing")
			var created *domain.VM
			betweenReads(w, n, func() { created = w.vm(t, alice, "new") })
			ctx := context.Background()
			if err := w.resync().Handle(ctx, app.Resync{}); err != nil {
				t.Fatal(err)
			}
			got, err := w.repo.Get(ctx, domain.ByUUID(created.UUID))
			if err != nil || got.Status != domain.StatusStopped || got.StatusReason != "" {
				t.Fatalf("a VM created during the resync: %+v %v", got, err)
			}
			if _, ok := w.hv.machines[created.UUID]; !ok {
				t.Fatal("its domain was removed as an orphan")
			}
			// It can be started at once: it was never in Error.
			if _, err := w.power.Handle(ctx, app.ChangePower{Caller: alice, Ref: domain.ByUUID(created.UUID), Action: domain.ActionStart}); err != nil {
				t.Fatalf("start refused: %v", err)
			}
		})
	}
}

// A start (or stop) that completes while the resync reads keeps its result: the resync's reading of
// the hypervisor may predate it and is not applied.
func TestResync_ActionFinishingBetweenItsReads_KeepsItsResult(t *testing.T) {
	for _, c := range []struct {
		action domain.Action
		want   domain.Status
	}{{domain.ActionStart, domain.StatusRunning}, {domain.ActionStop, domain.StatusStopped}} {
		for _, n := range []int{1, 2} {
			t.Run(fmt.Sprintf("%s after read %d", c.action, n), func(t *testing.T) {
				w := newWorld()
				vm := w.vm(t, alice, "web")
				ctx := context.Background()
				if c.action == domain.ActionStop {
					if _, err := w.power.Handle(ctx, app.ChangePower{Caller: alice, Ref: domain.ByUUID(vm.UUID), Action: domain.ActionStart}); err != nil {
						t.Fatal(err)
					}
				}
				betweenReads(w, n, func() {
					if _, err := w.power.Handle(ctx, app.ChangePower{Caller: alice, Ref: domain.ByUUID(vm.UUID), Action: c.action}); err != nil {
						t.Errorf("%s: %v", c.action, err)
					}
				})
				if err := w.resync().Handle(ctx, app.Resync{}); err != nil {
					t.Fatal(err)
				}
				got, _ := w.repo.Get(ctx, domain.ByUUID(vm.UUID))
				if got.Status != c.want || w.hv.machines[vm.UUID] != c.want {
					t.Fatalf("after a %s during the resync: recorded %s, hypervisor %s", c.action, got.Status, w.hv.machines[vm.UUID])
				}
			})
		}
	}
}

// A reading that differs from the row is not applied when the row changed after it was read: here the
// guest powered off behind LIMEN's back, its event was applied and the user started it again, all
// while the resync held the reading "Stopped".
func TestResync_RowChangedSinceItWasRead_ReadingNotApplied(t *testing.T) {
	for _, n := range []int{1, 2} {
		t.Run(fmt.Sprintf("after read %d", n), func(t *testing.T) {
			w := newWorld()
			vm := w.vm(t, alice, "web")
			ctx := context.Background()
			if _, err := w.power.Handle(ctx, app.ChangePower{Caller: alice, Ref: domain.ByUUID(vm.UUID), Action: domain.ActionStart}); err != nil {
				t.Fatal(err)
			}
			w.hv.machines[vm.UUID] = domain.StatusStopped // the guest powered itself off
			betweenReads(w, n, func() {
				if err := (app.ObserveStatusHandler{Repo: w.repo, Hypervisor: w.hv, Now: clock}).Handle(ctx, app.ObserveStatus{VMUUID: vm.UUID}); err != nil {
					t.Error(err)
				}
				if _, err := w.power.Handle(ctx, app.ChangePower{Caller: alice, Ref: domain.ByUUID(vm.UUID), Action: domain.ActionStart}); err != nil {
					t.Errorf("start: %v", err)
				}
			})
			if err := w.resync().Handle(ctx, app.Resync{}); err != nil {
				t.Fatal(err)
			}
			got, _ := w.repo.Get(ctx, domain.ByUUID(vm.UUID))
			if got.Status != domain.StatusRunning || w.hv.machines[vm.UUID] != domain.StatusRunning {
				t.Fatalf("recorded %s, hypervisor %s", got.Status, w.hv.machines[vm.UUID])
			}
		})
	}
}

// A claim blocks other actions while its process heartbeats, and not a moment after it stopped.
func TestTask_DeadProcessesClaimNoLongerBlocks_ALiveOnesDoes(t *testing.T) {
	w := newWorld()
	vm := w.vm(t, alice, "web")
	ctx := context.Background()
	other := uuid.New()
	if _, err := w.repo.Update(ctx, vm.UUID, func(vm *domain.VM) error { return vm.BeginTask(domain.ActionStop, other, now) }); err != nil {
		t.Fatal(err)
	}
	_, err := w.power.Handle(ctx, app.ChangePower{Caller: alice, Ref: domain.ByUUID(vm.UUID), Action: domain.ActionStart})
	if failure.KindOf(err) != failure.Busy || err.Error() != "VM is busy: stop in progress" {
		t.Fatalf("start while a live process holds the VM: %v", err)
	}
	// A resync leaves a live process's task alone.
	if err := w.resync().Handle(ctx, app.Resync{}); err != nil {
		t.Fatal(err)
	}
	if got, _ := w.repo.Get(ctx, domain.ByUUID(vm.UUID)); got.Task != domain.ActionStop {
		t.Fatalf("a live task was released: %+v", got)
	}

	w.repo.dead[other] = true // its heartbeat lapsed
	got, err := w.power.Handle(ctx, app.ChangePower{Caller: alice, Ref: domain.ByUUID(vm.UUID), Action: domain.ActionStart})
	if err != nil || got.Status != domain.StatusRunning || got.Task != "" {
		t.Fatalf("start after the claimant died: %+v %v", got, err)
	}

	// The resync releases a dead process's task it finds.
	if _, err := w.repo.Update(ctx, vm.UUID, func(vm *domain.VM) error {
		vm.Task, vm.TaskOwner, vm.TaskSince = domain.ActionPause, other, now
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := w.resync().Handle(ctx, app.Resync{}); err != nil {
		t.Fatal(err)
	}
	if got, _ := w.repo.Get(ctx, domain.ByUUID(vm.UUID)); got.Task != "" || got.Status != domain.StatusRunning {
		t.Fatalf("after the resync: %+v", got)
	}
}

// A process whose claim was taken over (its own heartbeat lapsed mid-action) does not end the new
// claimant's task when its action finishes.
func TestTask_TakenOverClaimIsNotEndedByItsFormerOwner(t *testing.T) {
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
	w.repo.dead[replica] = true
	w.repo.mu.Unlock()
	other := uuid.New()
	if _, err := w.repo.Update(ctx, vm.UUID, func(vm *domain.VM) error { return vm.BeginTask(domain.ActionForceStop, other, now) }); err != nil {
		t.Fatalf("take-over: %v", err)
	}
	close(w.hv.gate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got, _ := w.repo.Get(ctx, domain.ByUUID(vm.UUID)); !got.HoldsTask(domain.ActionForceStop, other) {
		t.Fatalf("the new claimant's task was ended: %+v", got)
	}
}

// An update may name one dimension; the other keeps its value. Naming neither is refused.
func TestResize_OneDimensionKeepsTheOther(t *testing.T) {
	w := newWorld()
	vm := w.vm(t, alice, "web")
	resize := app.ResizeVMHandler{Repo: w.repo, Quota: w.quota, Hypervisor: w.hv, Replica: replica, Now: clock}
	ctx := context.Background()
	got, err := resize.Handle(ctx, size(alice, domain.ByUUID(vm.UUID), 2, 0))
	if err != nil || got.CPU != 2 || got.MemoryMiB != 64 {
		t.Fatalf("cpu only: %+v %v", got, err)
	}
	got, err = resize.Handle(ctx, size(alice, domain.ByUUID(vm.UUID), 0, 256))
	if err != nil || got.CPU != 2 || got.MemoryMiB != 256 {
		t.Fatalf("memory only: %+v %v", got, err)
	}
	_, err = resize.Handle(ctx, size(alice, domain.ByUUID(vm.UUID), 0, 0))
	if failure.KindOf(err) != failure.Invalid || err.Error() != "Field 'cpu' or 'memory' is required for update" {
		t.Fatalf("neither: %v", err)
	}
	if w.hv.count("resize") != 2 {
		t.Fatalf("resizes on the hypervisor: %d", w.hv.count("resize"))
	}
}

// No use case calls the hypervisor while a repository transaction (a row or advisory lock) is open.
func TestNoTransactionIsHeldAcrossAHypervisorCall(t *testing.T) {
	w := newWorld()
	w.hv.inTx = w.repo.inTx.Load
	ctx := context.Background()
	vm, err := w.create.Handle(ctx, app.CreateVM{Caller: alice, Name: "web", CPU: 1, MemoryMiB: 64, OSType: "ubuntu-server", Start: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []domain.Action{domain.ActionPause, domain.ActionResume, domain.ActionRestart, domain.ActionStop} {
		if _, err := w.power.Handle(ctx, app.ChangePower{Caller: alice, Ref: domain.ByUUID(vm.UUID), Action: a}); err != nil {
			t.Fatalf("%s: %v", a, err)
		}
	}
	resize := app.ResizeVMHandler{Repo: w.repo, Quota: w.quota, Hypervisor: w.hv, Replica: replica, Now: clock}
	if _, err := resize.Handle(ctx, size(alice, domain.ByUUID(vm.UUID), 2, 128)); err != nil {
		t.Fatal(err)
	}
	if err := (app.ObserveStatusHandler{Repo: w.repo, Hypervisor: w.hv, Now: clock}).Handle(ctx, app.ObserveStatus{VMUUID: vm.UUID}); err != nil {
		t.Fatal(err)
	}
	orphan := uuid.New()
	w.hv.mu.Lock()
	w.hv.machines[orphan], w.hv.created[orphan] = domain.StatusStopped, now.Add(-time.Hour)
	w.hv.mu.Unlock()
	if err := w.resync().Handle(ctx, app.Resync{}); err != nil {
		t.Fatal(err)
	}
	if _, err := (app.DeleteVMHandler{Repo: w.repo, Hypervisor: w.hv, Quota: w.quota, Replica: replica, Now: clock}).Handle(ctx, app.DeleteVM{Caller: alice, Ref: domain.ByUUID(vm.UUID)}); err != nil {
		t.Fatal(err)
	}
	w.repo.failAdd = errBoom
	if _, err := w.create.Handle(ctx, app.CreateVM{Caller: alice, Name: "undone", CPU: 1, MemoryMiB: 64, OSType: "ubuntu-server"}); !errors.Is(err, errBoom) {
		t.Fatal(err)
	}
	if len(w.hv.calls) < 10 {
		t.Fatalf("too few hypervisor calls to mean anything: %v", w.hv.calls)
	}
	if len(w.hv.calledInTx) > 0 {
		t.Fatalf("hypervisor called inside a repository transaction: %v", w.hv.calledInTx)
	}
}
