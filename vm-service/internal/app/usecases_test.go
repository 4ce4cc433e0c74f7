package app_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"limen/libs/failure"
	"limen/vm-service/internal/app"
	"limen/vm-service/internal/domain"
)

var (
	catalogue = domain.Catalogue{{Name: "ubuntu-server", Label: "Ubuntu", DiskGB: 20, DefaultMemory: 2048}}
	alice     = app.Caller{UserID: 1}
	bob       = app.Caller{UserID: 2}
	admin     = app.Caller{UserID: 9, Admin: true}
	quiet     = slog.New(slog.NewTextHandler(io.Discard, nil))
	// replica is the process the tests' use cases run in.
	replica = uuid.MustParse("00000000-0000-4000-8000-000000000001")
)

// size is an update of the VM ref names, asked by caller; 0 leaves a dimension out.
func size(caller app.Caller, ref domain.Ref, cpu, memoryMiB int) app.ResizeVM {
	r := app.ResizeVM{Caller: caller, Ref: ref}
	if cpu != 0 {
		r.CPU = &cpu
	}
	if memoryMiB != 0 {
		r.MemoryMiB = &memoryMiB
	}
	return r
}

type world struct {
	repo   *memRepo
	hv     *fakeHypervisor
	quota  *fakeQuota
	tasks  *app.Tasks
	power  app.ChangePowerHandler
	create app.CreateVMHandler
}

func newWorld() *world {
	w := &world{repo: newRepo(), hv: newHypervisor(), quota: newQuota(roomyLimits), tasks: app.NewTasks(quiet)}
	w.tasks.RetryMin, w.tasks.RetryMax = 5*time.Millisecond, 20*time.Millisecond
	w.power = app.ChangePowerHandler{Repo: w.repo, Hypervisor: w.hv, Replica: replica, Tasks: w.tasks, Now: clock}
	w.create = app.CreateVMHandler{Repo: w.repo, Hypervisor: w.hv, Quota: w.quota, Catalogue: catalogue, Power: w.power, Host: "h1", Now: clock, Log: quiet}
	return w
}

func (w *world) vm(t *testing.T, caller app.Caller, name string) *domain.VM {
	t.Helper()
	vm, err := w.create.Handle(context.Background(), app.CreateVM{Caller: caller, Name: name, CPU: 1, MemoryMiB: 64, OSType: "ubuntu-server"})
	if err != nil {
		t.Fatal(err)
	}
	return vm
}

func TestCreate_RecordsTheMachineAndAnnouncesIt(t *testing.T) {
	w := newWorld()
	vm := w.vm(t, alice, "web")
	if vm.ID == 0 || vm.Status != domain.StatusStopped || vm.Host != "h1" || vm.DiskGB != 20 {
		t.Fatalf("unexpected VM %+v", vm)
	}
	if len(w.repo.events) != 1 {
		t.Fatalf("events %v", w.repo.events)
	}
}

func TestCreate_BadInputAndDuplicates_TouchNothing(t *testing.T) {
	w := newWorld()
	w.vm(t, alice, "web")
	cases := []struct {
		req  app.CreateVM
		kind failure.Kind
	}{
		{app.CreateVM{Caller: alice, Name: "web", CPU: 1, MemoryMiB: 64, OSType: "ubuntu-server"}, failure.Conflict},
		{app.CreateVM{Caller: alice, Name: "x", CPU: 1, MemoryMiB: 64, OSType: "beos"}, failure.Invalid},
		{app.CreateVM{Caller: alice, Name: "x", CPU: 0, MemoryMiB: 64, OSType: "ubuntu-server"}, failure.Invalid},
		{app.CreateVM{Caller: alice, Name: "x/y", CPU: 1, MemoryMiB: 64, OSType: "ubuntu-server"}, failure.Invalid},
	}
	for _, c := range cases {
		if _, err := w.create.Handle(context.Background(), c.req); failure.KindOf(err) != c.kind {
			t.Errorf("%+v: got %v", c.req, err)
		}
	}
	if w.hv.count("create") != 1 || len(w.repo.vms) != 1 {
		t.Fatalf("bad input reached the hypervisor or the database: %v", w.hv.calls)
	}
	// The same name under another owner is fine.
	w.vm(t, bob, "web")
}

func TestCreate_HypervisorFailure_LeavesNoRow(t *testing.T) {
	w := newWorld()
	w.hv.failWith = errBoom
	if _, err := w.create.Handle(context.Background(), app.CreateVM{Caller: alice, Name: "web", CPU: 1, MemoryMiB: 64, OSType: "ubuntu-server"}); !errors.Is(err, errBoom) {
		t.Fatalf("got %v", err)
	}
	if len(w.repo.vms) != 0 || len(w.repo.events) != 0 {
		t.Fatal("a row or event was left behind")
	}
}

func TestCreate_DatabaseFailure_UndoesTheMachine(t *testing.T) {
	w := newWorld()
	w.repo.failAdd = errBoom
	if _, err := w.create.Handle(context.Background(), app.CreateVM{Caller: alice, Name: "web", CPU: 1, MemoryMiB: 64, OSType: "ubuntu-server"}); !errors.Is(err, errBoom) {
		t.Fatalf("got %v", err)
	}
	if len(w.hv.machines) != 0 || w.hv.count("delete") != 1 {
		t.Fatalf("machine left on the hypervisor: %v", w.hv.calls)
	}
}

func TestCreate_WithStart(t *testing.T) {
	w := newWorld()
	vm, err := w.create.Handle(context.Background(), app.CreateVM{Caller: alice, Name: "web", CPU: 1, MemoryMiB: 64, OSType: "ubuntu-server", Start: true})
	if err != nil || vm.Status != domain.StatusRunning {
		t.Fatalf("%+v %v", vm, err)
	}
}

func TestOwnership_OthersVMsAreNotFound_AdminSeesAll(t *testing.T) {
	w := newWorld()
	vm := w.vm(t, alice, "web")
	w.vm(t, bob, "db")
	ctx := context.Background()
	if _, err := (app.GetVMHandler{Repo: w.repo}).Handle(ctx, app.GetVM{Caller: bob, Ref: domain.ByUUID(vm.UUID)}); !errors.Is(err, domain.ErrVMNotFound) {
		t.Fatalf("bob sees alice's VM: %v", err)
	}
	if _, err := w.power.Handle(ctx, app.ChangePower{Caller: bob, Ref: domain.Ref{ID: vm.ID}, Action: domain.ActionStart}); !errors.Is(err, domain.ErrVMNotFound) {
		t.Fatalf("bob started alice's VM: %v", err)
	}
	if _, err := (app.DeleteVMHandler{Repo: w.repo, Hypervisor: w.hv, Quota: w.quota, Now: clock}).Handle(ctx, app.DeleteVM{Caller: bob, Ref: domain.ByUUID(vm.UUID)}); !errors.Is(err, domain.ErrVMNotFound) {
		t.Fatalf("bob deleted alice's VM: %v", err)
	}
	if _, err := (app.GetVMHandler{Repo: w.repo}).Handle(ctx, app.GetVM{Caller: admin, Ref: domain.ByUUID(vm.UUID)}); err != nil {
		t.Fatal(err)
	}
	list := app.ListVMsHandler{Repo: w.repo}
	own, _ := list.Handle(ctx, app.ListVMs{Caller: alice, All: true})
	all, _ := list.Handle(ctx, app.ListVMs{Caller: admin, All: true})
	mine, _ := list.Handle(ctx, app.ListVMs{Caller: admin, All: false})
	if len(own) != 1 || len(all) != 2 || len(mine) != 0 {
		t.Fatalf("lists: user all=%d admin all=%d admin own=%d", len(own), len(all), len(mine))
	}
}

func TestPower_ForbiddenTransitionsAre409(t *testing.T) {
	w := newWorld()
	vm := w.vm(t, alice, "web")
	ctx := context.Background()
	for _, a := range []domain.Action{domain.ActionStop, domain.ActionPause, domain.ActionResume, domain.ActionRestart} {
		if _, err := w.power.Handle(ctx, app.ChangePower{Caller: alice, Ref: domain.ByUUID(vm.UUID), Action: a}); failure.KindOf(err) != failure.Conflict {
			t.Errorf("%s on a stopped VM: %v", a, err)
		}
	}
	if _, err := w.power.Handle(ctx, app.ChangePower{Caller: alice, Ref: domain.ByUUID(vm.UUID), Action: domain.ActionStart}); err != nil {
		t.Fatal(err)
	}
	_, err := w.power.Handle(ctx, app.ChangePower{Caller: alice, Ref: domain.ByUUID(vm.UUID), Action: domain.ActionStart})
	if failure.KindOf(err) != failure.Conflict || err.Error() != "Cannot start VM: VM is Running" {
		t.Fatalf("second start: %v", err)
	}
	if w.hv.count("start") != 1 {
		t.Fatal("a refused start reached the hypervisor")
	}
}

func TestPower_ConcurrentStarts_OneReachesTheHypervisor(t *testing.T) {
	w := newWorld()
	vm := w.vm(t, alice, "web")
	w.hv.gate = make(chan struct{})
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = w.power.Handle(context.Background(), app.ChangePower{Caller: alice, Ref: domain.ByUUID(vm.UUID), Action: domain.ActionStart})
		}()
	}
	for w.hv.count("start") == 0 {
	}
	close(w.hv.gate)
	wg.Wait()
	ok := 0
	for _, err := range errs {
		if err == nil {
			ok++
		} else if kind := failure.KindOf(err); kind != failure.Conflict && kind != failure.Busy {
			t.Fatalf("the loser got %v, want 409", err)
		}
	}
	if ok != 1 || w.hv.count("start") != 1 {
		t.Fatalf("%d succeeded, %d starts reached the hypervisor", ok, w.hv.count("start"))
	}
}

func TestPower_HypervisorFailure_FreesTheVM(t *testing.T) {
	w := newWorld()
	vm := w.vm(t, alice, "web")
	w.hv.failWith = errBoom
	if _, err := w.power.Handle(context.Background(), app.ChangePower{Caller: alice, Ref: domain.ByUUID(vm.UUID), Action: domain.ActionStart}); !errors.Is(err, errBoom) {
		t.Fatalf("got %v", err)
	}
	w.hv.failWith = nil
	got, err := w.power.Handle(context.Background(), app.ChangePower{Caller: alice, Ref: domain.ByUUID(vm.UUID), Action: domain.ActionStart})
	if err != nil || got.Status != domain.StatusRunning || got.Task != "" {
		t.Fatalf("after a failed start: %+v %v", got, err)
	}
}

func TestResize_OnlyWhenStopped_AndOnlyAfterTheHypervisorTookIt(t *testing.T) {
	w := newWorld()
	vm := w.vm(t, alice, "web")
	resize := app.ResizeVMHandler{Repo: w.repo, Quota: w.quota, Hypervisor: w.hv, Now: clock}
	ctx := context.Background()
	if _, err := resize.Handle(ctx, app.ResizeVM{Caller: alice, Ref: domain.ByUUID(vm.UUID), CPU: new(int), MemoryMiB: nil}); failure.KindOf(err) != failure.Invalid {
		t.Fatalf("cpu 0: %v", err)
	}
	w.hv.failWith = errBoom
	if _, err := resize.Handle(ctx, size(alice, domain.ByUUID(vm.UUID), 2, 128)); err == nil {
		t.Fatal("hypervisor failure ignored")
	}
	if got, _ := w.repo.Get(ctx, domain.ByUUID(vm.UUID)); got.CPU != 1 || got.Task != "" {
		t.Fatalf("failed resize stored: %+v", got)
	}
	w.hv.failWith = nil
	got, err := resize.Handle(ctx, size(alice, domain.ByUUID(vm.UUID), 2, 128))
	if err != nil || got.CPU != 2 || got.MemoryMiB != 128 {
		t.Fatalf("%+v %v", got, err)
	}
	if _, err := w.power.Handle(ctx, app.ChangePower{Caller: alice, Ref: domain.ByUUID(vm.UUID), Action: domain.ActionStart}); err != nil {
		t.Fatal(err)
	}
	if _, err := resize.Handle(ctx, size(alice, domain.ByUUID(vm.UUID), 1, 64)); failure.KindOf(err) != failure.Conflict {
		t.Fatalf("resize while running: %v", err)
	}
}

func TestDelete_RemovesMachineAndRow_AnnouncesIt(t *testing.T) {
	w := newWorld()
	vm := w.vm(t, alice, "web")
	del := app.DeleteVMHandler{Repo: w.repo, Hypervisor: w.hv, Quota: w.quota, Now: clock}
	w.hv.deleteErr = errBoom
	if _, err := del.Handle(context.Background(), app.DeleteVM{Caller: alice, Ref: domain.ByUUID(vm.UUID)}); err == nil {
		t.Fatal("hypervisor failure ignored")
	}
	if got, _ := w.repo.Get(context.Background(), domain.ByUUID(vm.UUID)); got == nil || got.Task != "" {
		t.Fatalf("after a failed delete: %+v", got)
	}
	w.hv.deleteErr = nil
	if _, err := del.Handle(context.Background(), app.DeleteVM{Caller: alice, Ref: domain.ByUUID(vm.UUID)}); err != nil {
		t.Fatal(err)
	}
	if len(w.repo.vms) != 0 || len(w.hv.machines) != 0 || w.repo.events[len(w.repo.events)-1] != "deleted" {
		t.Fatalf("left: rows %d machines %d events %v", len(w.repo.vms), len(w.hv.machines), w.repo.events)
	}
}

func TestObserveAndResync_Converge(t *testing.T) {
	w := newWorld()
	a, b, c := w.vm(t, alice, "a"), w.vm(t, alice, "b"), w.vm(t, alice, "c")
	ctx := context.Background()
	// Behind LIMEN's back: a started, b vanished; c is half-deleted (hypervisor done, row left).
	w.hv.machines[a.UUID] = domain.StatusRunning
	delete(w.hv.machines, b.UUID)
	delete(w.hv.machines, c.UUID)
	if _, err := w.repo.Update(ctx, c.UUID, func(vm *domain.VM) error { return vm.BeginTask(domain.ActionDelete, replica, now) }); err != nil {
		t.Fatal(err)
	}
	observe := app.ObserveStatusHandler{Repo: w.repo, Hypervisor: w.hv, Now: clock}
	if err := observe.Handle(ctx, app.ObserveStatus{VMUUID: a.UUID}); err != nil {
		t.Fatal(err)
	}
	if got, _ := w.repo.Get(ctx, domain.ByUUID(a.UUID)); got.Status != domain.StatusRunning {
		t.Fatalf("event not applied: %s", got.Status)
	}
	if err := (app.ResyncHandler{Repo: w.repo, Hypervisor: w.hv, Now: clock, Log: quiet}).Handle(ctx, app.Resync{}); err != nil {
		t.Fatal(err)
	}
	if got, _ := w.repo.Get(ctx, domain.ByUUID(b.UUID)); got.Status != domain.StatusError || got.StatusReason != domain.ReasonMachineMissing {
		t.Fatalf("vanished VM: %+v", got)
	}
	if _, err := w.repo.Get(ctx, domain.ByUUID(c.UUID)); !errors.Is(err, domain.ErrVMNotFound) {
		t.Fatal("interrupted delete not finished")
	}
	before := len(w.repo.events)
	_ = (app.ResyncHandler{Repo: w.repo, Hypervisor: w.hv, Now: clock, Log: quiet}).Handle(ctx, app.Resync{})
	if len(w.repo.events) != before {
		t.Fatal("a resync with nothing to repair wrote events")
	}
}

func TestResync_RemovesOnlyOwnOrphansPastTheGrace(t *testing.T) {
	w := newWorld()
	ctx := context.Background()
	kept := w.vm(t, alice, "kept")
	orphan, young, foreign := uuid.New(), uuid.New(), uuid.New()
	for _, id := range []uuid.UUID{orphan, young, foreign} {
		w.hv.machines[id] = domain.StatusStopped
	}
	w.hv.created[orphan] = now.Add(-time.Hour)
	w.hv.created[young] = now.Add(-time.Minute)
	resync := app.ResyncHandler{Repo: w.repo, Hypervisor: w.hv, OrphanGrace: 10 * time.Minute, Now: clock, Log: quiet}
	if err := resync.Handle(ctx, app.Resync{}); err != nil {
		t.Fatal(err)
	}
	if _, ok := w.hv.machines[orphan]; ok {
		t.Fatal("an old orphan of this installation survived")
	}
	for name, id := range map[string]uuid.UUID{"a recorded VM": kept.UUID, "a create in flight": young, "another installation's domain": foreign} {
		if _, ok := w.hv.machines[id]; !ok {
			t.Errorf("%s was removed", name)
		}
	}
}
