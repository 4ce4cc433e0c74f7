package app_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"limen/libs/failure"
	"limen/vm-service/internal/app"
	"limen/vm-service/internal/domain"
)

// running is a started VM whose guest ignores ACPI, with a stop on it that outlived its caller's wait.
func running(t *testing.T, w *world) *domain.VM {
	t.Helper()
	vm := w.vm(t, alice, "web")
	ctx := context.Background()
	if _, err := w.power.Handle(ctx, app.ChangePower{Caller: alice, Ref: domain.ByUUID(vm.UUID), Action: domain.ActionStart}); err != nil {
		t.Fatal(err)
	}
	w.hv.mu.Lock()
	w.hv.deaf = make(chan struct{})
	w.hv.mu.Unlock()
	got, err := w.power.Handle(ctx, app.ChangePower{Caller: alice, Ref: domain.ByUUID(vm.UUID), Action: domain.ActionStop, Wait: 10 * time.Millisecond})
	if err != nil || !got.Busy() || got.Task != domain.ActionStop || got.Status != domain.StatusRunning {
		t.Fatalf("a stop past the wait: %+v %v", got, err)
	}
	waitFor(t, "the ACPI request", func() bool { return w.hv.count("acpi") == 1 })
	return vm
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 5s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// idle reads the VM and checks it is status with no task, its claim released.
func idle(t *testing.T, w *world, id uuid.UUID, status domain.Status) {
	t.Helper()
	got, err := w.repo.Get(context.Background(), domain.ByUUID(id))
	if err != nil || got.Task != "" || got.Status != status {
		t.Fatalf("want %s and idle: %+v %v", status, got, err)
	}
}

// An action not done within the caller's wait goes on: the record shows its task until it ends, and
// its end is a change (an event) that drops the task.
func TestAction_PastTheWait_GoesOnAndItsEndIsAnnounced(t *testing.T) {
	w := newWorld()
	vm := running(t, w)
	got, _ := w.repo.Get(context.Background(), domain.ByUUID(vm.UUID))
	if !got.Busy() || got.Task != domain.ActionStop {
		t.Fatalf("the record during the stop: %+v", got)
	}
	events := len(w.repo.events)
	close(w.hv.deaf) // the guest powers off after all
	w.tasks.Drain(5 * time.Second)
	idle(t, w, vm.UUID, domain.StatusStopped)
	if len(w.repo.events) != events+1 {
		t.Fatalf("the stop's end made %d events, want 1", len(w.repo.events)-events)
	}
}

// While a stop runs, every action but force_stop is refused as busy; a force stop takes the stop
// over, ends it (its caller, if still waiting, hears who took over) and answers Stopped. The stop
// does nothing afterwards.
func TestForceStop_OverridesARunningStop(t *testing.T) {
	w := newWorld()
	vm := w.vm(t, alice, "web")
	ctx := context.Background()
	if _, err := w.power.Handle(ctx, app.ChangePower{Caller: alice, Ref: domain.ByUUID(vm.UUID), Action: domain.ActionStart}); err != nil {
		t.Fatal(err)
	}
	w.hv.deaf = make(chan struct{})
	stopped := make(chan error, 1)
	go func() {
		_, err := w.power.Handle(ctx, app.ChangePower{Caller: alice, Ref: domain.ByUUID(vm.UUID), Action: domain.ActionStop})
		stopped <- err
	}()
	waitFor(t, "the ACPI request", func() bool { return w.hv.count("acpi") == 1 })

	for _, a := range []domain.Action{domain.ActionPause, domain.ActionRestart, domain.ActionStop} {
		_, err := w.power.Handle(ctx, app.ChangePower{Caller: alice, Ref: domain.ByUUID(vm.UUID), Action: a})
		if failure.KindOf(err) != failure.Busy || err.Error() != "VM is busy: stop in progress" {
			t.Fatalf("%s during the stop: %v", a, err)
		}
	}
	if _, err := (app.ResizeVMHandler{Repo: w.repo, Quota: w.quota, Hypervisor: w.hv, Replica: replica, Tasks: w.tasks, Now: clock}).
		Handle(ctx, size(alice, domain.ByUUID(vm.UUID), 2, 0)); err == nil {
		t.Fatal("an update during the stop was accepted")
	}

	got, err := w.power.Handle(ctx, app.ChangePower{Caller: alice, Ref: domain.ByUUID(vm.UUID), Action: domain.ActionForceStop})
	if err != nil || got.Status != domain.StatusStopped || got.Busy() {
		t.Fatalf("force stop: %+v %v", got, err)
	}
	// The stop had ended before the force stop answered, and its caller was told why.
	if w.hv.count("shutdown_ended") != 1 || w.hv.count("force_stop") != 1 {
		t.Fatalf("hypervisor calls: %v", w.hv.calls)
	}
	if err := <-stopped; failure.KindOf(err) != failure.Busy || err.Error() != "VM is busy: force stop in progress" {
		t.Fatalf("the stop's caller: %v", err)
	}
	idle(t, w, vm.UUID, domain.StatusStopped)

	// Started again, the VM stays running: nothing of the stop is left to complete.
	if _, err := w.power.Handle(ctx, app.ChangePower{Caller: alice, Ref: domain.ByUUID(vm.UUID), Action: domain.ActionStart}); err != nil {
		t.Fatal(err)
	}
	close(w.hv.deaf)
	w.tasks.Drain(time.Second)
	idle(t, w, vm.UUID, domain.StatusRunning)
	if w.hv.state(vm.UUID) != domain.StatusRunning || w.hv.count("shutdown") != 0 {
		t.Fatalf("the overridden stop acted later: %s, calls %v", w.hv.state(vm.UUID), w.hv.calls)
	}
}

// Two force stops at once during a stop: one takes it over and reaches the hypervisor, the other is
// refused (busy, or the VM already Stopped).
func TestForceStop_TwoAtOnce_OneWins(t *testing.T) {
	w := newWorld()
	vm := running(t, w)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = w.power.Handle(context.Background(), app.ChangePower{Caller: alice, Ref: domain.ByUUID(vm.UUID), Action: domain.ActionForceStop})
		}()
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case failure.KindOf(err) == failure.Busy && err.Error() == "VM is busy: force stop in progress":
		case failure.KindOf(err) == failure.Conflict && err.Error() == "Cannot force stop VM: VM is Stopped":
		default:
			t.Fatalf("the loser got %v", err)
		}
	}
	if ok != 1 || w.hv.count("force_stop") != 1 || w.hv.count("shutdown_ended") != 1 {
		t.Fatalf("%d succeeded; calls %v", ok, w.hv.calls)
	}
	idle(t, w, vm.UUID, domain.StatusStopped)
}

// A force stop racing the stop's own end: whichever wins, the VM ends Stopped and idle, and the
// force stop either did it (200) or found the VM Stopped (409), never a failure of the server.
func TestForceStop_RacingTheStopsOwnEnd(t *testing.T) {
	for range 50 {
		w := newWorld()
		vm := running(t, w)
		var wg sync.WaitGroup
		var err error
		wg.Add(2)
		go func() { defer wg.Done(); close(w.hv.deaf) }()
		go func() {
			defer wg.Done()
			_, err = w.power.Handle(context.Background(), app.ChangePower{Caller: alice, Ref: domain.ByUUID(vm.UUID), Action: domain.ActionForceStop})
		}()
		wg.Wait()
		if err != nil && (failure.KindOf(err) != failure.Conflict || err.Error() != "Cannot force stop VM: VM is Stopped") {
			t.Fatalf("force stop: %v", err)
		}
		w.tasks.Drain(5 * time.Second)
		idle(t, w, vm.UUID, domain.StatusStopped)
	}
}

// A force stop on one replica takes over a stop another replica runs: the claim passes in the
// database at once, the other replica notices (it reads its claim every ClaimCheck, and the force
// stop keeps the VM two of them) and ends its stop, recording nothing.
func TestForceStop_OverridesAStopOfAnotherReplica(t *testing.T) {
	w := newWorld()
	w.tasks.ClaimCheck = 5 * time.Millisecond
	vm := running(t, w)
	tasksB := app.NewTasks(quiet)
	tasksB.ClaimCheck = w.tasks.ClaimCheck
	defer tasksB.Close()
	powerB := app.ChangePowerHandler{Repo: w.repo, Hypervisor: w.hv, Replica: uuid.New(), Tasks: tasksB, Now: clock}

	got, err := powerB.Handle(context.Background(), app.ChangePower{Caller: alice, Ref: domain.ByUUID(vm.UUID), Action: domain.ActionForceStop})
	if err != nil || got.Status != domain.StatusStopped || got.Busy() {
		t.Fatalf("force stop on the other replica: %+v %v", got, err)
	}
	// The first replica noticed the takeover (reading its claim) and ended its stop.
	waitFor(t, "the end of the first replica's stop", func() bool { return w.hv.count("shutdown_ended") == 1 })
	// The VM is started at once; the first replica's stop, done, changes nothing.
	if _, err := powerB.Handle(context.Background(), app.ChangePower{Caller: alice, Ref: domain.ByUUID(vm.UUID), Action: domain.ActionStart}); err != nil {
		t.Fatal(err)
	}
	w.tasks.Drain(time.Second)
	idle(t, w, vm.UUID, domain.StatusRunning)
}

// At shutdown, an action still running past the drain is ended: it records its machine's state and
// releases its claim, so the VM is free at once.
func TestDrain_EndsWhatOutlivesIt_ClaimReleased(t *testing.T) {
	w := newWorld()
	vm := running(t, w)
	w.tasks.Drain(20 * time.Millisecond)
	if w.hv.count("shutdown_ended") != 1 {
		t.Fatalf("the stop was not ended: %v", w.hv.calls)
	}
	idle(t, w, vm.UUID, domain.StatusRunning)
	if _, err := w.power.Handle(context.Background(), app.ChangePower{Caller: alice, Ref: domain.ByUUID(vm.UUID), Action: domain.ActionPause}); err != nil {
		t.Fatalf("the VM is not free after the drain: %v", err)
	}
}

// Close ends an action started after the drain (a request still draining) the same way.
func TestClose_EndsActionsStillRunning(t *testing.T) {
	w := newWorld()
	vm := running(t, w)
	w.tasks.Close()
	idle(t, w, vm.UUID, domain.StatusRunning)
	if w.hv.count("shutdown_ended") != 1 {
		t.Fatalf("calls %v", w.hv.calls)
	}
}
