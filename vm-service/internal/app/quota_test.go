package app_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"

	"limen/libs/failure"
	"limen/vm-service/internal/app"
	"limen/vm-service/internal/domain"
)

// quotaServiceDown is the refusal the caller reads while quota-service is away (503).
func quotaServiceDown(err error) bool {
	f, ok := failure.As(err)
	return ok && f.Kind == failure.Unavailable && f.Message == "Quota service unavailable"
}

// order is the position of each call in the hypervisor's log, quota-service's calls included.
func order(t *testing.T, hv *fakeHypervisor, calls ...string) []int {
	t.Helper()
	hv.mu.Lock()
	defer hv.mu.Unlock()
	at := make([]int, len(calls))
	for i, c := range calls {
		if at[i] = slices.Index(hv.calls, c); at[i] < 0 {
			t.Fatalf("no %s in %v", c, hv.calls)
		}
	}
	return at
}

func TestQuota_CreateReservesBeforeTheHypervisor_CommitsTheWrittenRow(t *testing.T) {
	w := newWorld()
	w.quota.trace = w.hv
	vm := w.vm(t, alice, "web")
	if at := order(t, w.hv, "quota.reserve", "create", "quota.commit"); !(at[0] < at[1] && at[1] < at[2]) {
		t.Fatalf("calls %v", w.hv.calls)
	}
	w.quota.mu.Lock()
	held := w.quota.vms[vm.UUID]
	w.quota.mu.Unlock()
	if held != (heldVM{owner: alice.UserID, cpu: vm.CPU, memoryMiB: vm.MemoryMiB, version: vm.Version}) {
		t.Fatalf("committed %+v for %+v", held, vm)
	}
	if used, pending := w.quota.state(alice.UserID); used != (domain.Usage{VMs: 1, CPU: 1, MemoryMiB: 64}) || pending != 0 {
		t.Fatalf("usage %+v, %d pending", used, pending)
	}
}

func TestQuota_CreateReleasesWhenTheHypervisorOrTheInsertFails(t *testing.T) {
	for name, fail := range map[string]func(*world){
		"hypervisor": func(w *world) { w.hv.failWith = errBoom },
		"insert":     func(w *world) { w.repo.failAdd = errBoom },
	} {
		t.Run(name, func(t *testing.T) {
			w := newWorld()
			fail(w)
			if _, err := w.create.Handle(context.Background(), app.CreateVM{Caller: alice, Name: "web", CPU: 2, MemoryMiB: 128, OSType: "ubuntu-server"}); err == nil {
				t.Fatal("the failure was not answered")
			}
			if used, pending := w.quota.state(alice.UserID); used != (domain.Usage{}) || pending != 0 {
				t.Fatalf("usage %+v, %d pending after a failed create", used, pending)
			}
			if len(w.hv.machines) != 0 {
				t.Fatalf("machines left: %v", w.hv.machines)
			}
		})
	}
}

func TestQuota_OverQuota_QuotaServicesMessage_NothingMade(t *testing.T) {
	w := newWorld()
	w.quota.limits = domain.Usage{VMs: 2, CPU: 3, MemoryMiB: 256}
	ctx := context.Background()
	w.vm(t, alice, "a")
	b := w.vm(t, alice, "b")
	_, err := w.create.Handle(ctx, app.CreateVM{Caller: alice, Name: "c", CPU: 1, MemoryMiB: 64, OSType: "ubuntu-server"})
	if failure.KindOf(err) != failure.Quota || err.Error() != "Quota exceeded: vms 3/2" {
		t.Fatalf("third VM: %v", err)
	}
	if w.hv.count("create") != 2 || len(w.repo.vms) != 2 {
		t.Fatal("a refused create reached the hypervisor or the database")
	}
	w.vm(t, bob, "a") // another user is not affected

	resize := app.ResizeVMHandler{Repo: w.repo, Quota: w.quota, Hypervisor: w.hv, Now: clock}
	if _, err := resize.Handle(ctx, size(alice, domain.ByUUID(b.UUID), 3, 64)); failure.KindOf(err) != failure.Quota || err.Error() != "Quota exceeded: cpu 4/3" {
		t.Fatalf("resize over the cpu quota: %v", err)
	}
	if w.hv.count("resize") != 0 {
		t.Fatal("a refused resize reached the hypervisor")
	}
	got, err := resize.Handle(ctx, size(alice, domain.ByUUID(b.UUID), 2, 128))
	if err != nil {
		t.Fatalf("resize within the quota: %v", err)
	}
	if used, pending := w.quota.state(alice.UserID); used != (domain.Usage{VMs: 2, CPU: 3, MemoryMiB: 192}) || pending != 0 {
		t.Fatalf("usage %+v, %d pending after the resize to %+v", used, pending, got)
	}
}

func TestQuota_ResizeReleasesWhenTheHypervisorFails_AndAShrinkReservesNothing(t *testing.T) {
	w := newWorld()
	vm := w.vm(t, alice, "web")
	resize := app.ResizeVMHandler{Repo: w.repo, Quota: w.quota, Hypervisor: w.hv, Now: clock}
	ctx := context.Background()
	w.hv.failWith = errBoom
	if _, err := resize.Handle(ctx, size(alice, domain.ByUUID(vm.UUID), 4, 512)); err == nil {
		t.Fatal("hypervisor failure ignored")
	}
	w.hv.failWith = nil
	if used, pending := w.quota.state(alice.UserID); used != (domain.Usage{VMs: 1, CPU: 1, MemoryMiB: 64}) || pending != 0 {
		t.Fatalf("usage %+v, %d pending after a failed resize", used, pending)
	}
	if _, err := resize.Handle(ctx, size(alice, domain.ByUUID(vm.UUID), 4, 512)); err != nil {
		t.Fatal(err)
	}
	// quota-service away: a shrink still works (its VM event tells quota-service), growth does not.
	w.quota.down.Store(true)
	if got, err := resize.Handle(ctx, size(alice, domain.ByUUID(vm.UUID), 2, 256)); err != nil || got.CPU != 2 {
		t.Fatalf("shrink with quota-service away: %+v %v", got, err)
	}
	if _, err := resize.Handle(ctx, size(alice, domain.ByUUID(vm.UUID), 3, 0)); !quotaServiceDown(err) {
		t.Fatalf("growth with quota-service away: %v", err)
	}
}

func TestQuota_QuotaServiceDown_GrowthRefused_StartStopDeleteWork(t *testing.T) {
	w := newWorld()
	vm := w.vm(t, alice, "web")
	w.quota.down.Store(true)
	ctx := context.Background()
	_, err := w.create.Handle(ctx, app.CreateVM{Caller: alice, Name: "db", CPU: 1, MemoryMiB: 64, OSType: "ubuntu-server"})
	if !quotaServiceDown(err) {
		t.Fatalf("create with quota-service away: %v", err)
	}
	if w.hv.count("create") != 1 {
		t.Fatal("a create reached the hypervisor unchecked")
	}
	for _, a := range []domain.Action{domain.ActionStart, domain.ActionForceStop} {
		if _, err := w.power.Handle(ctx, app.ChangePower{Caller: alice, Ref: domain.ByUUID(vm.UUID), Action: a}); err != nil {
			t.Fatalf("%s with quota-service away: %v", a, err)
		}
	}
	del := app.DeleteVMHandler{Repo: w.repo, Hypervisor: w.hv, Quota: w.quota, Now: clock}
	if _, err := del.Handle(ctx, app.DeleteVM{Caller: alice, Ref: domain.ByUUID(vm.UUID)}); err != nil {
		t.Fatalf("delete with quota-service away: %v", err)
	}
	if _, err := w.repo.Get(ctx, domain.ByUUID(vm.UUID)); !errors.Is(err, domain.ErrVMNotFound) {
		t.Fatalf("the VM is still there: %v", err)
	}
}

func TestQuota_DeleteReleasesTheVMsUsage(t *testing.T) {
	w := newWorld()
	w.quota.trace = w.hv
	vm := w.vm(t, alice, "web")
	del := app.DeleteVMHandler{Repo: w.repo, Hypervisor: w.hv, Quota: w.quota, Now: clock}
	if _, err := del.Handle(context.Background(), app.DeleteVM{Caller: alice, Ref: domain.ByUUID(vm.UUID)}); err != nil {
		t.Fatal(err)
	}
	if at := order(t, w.hv, "delete", "quota.release_vm"); at[0] > at[1] {
		t.Fatalf("usage released before the machine went: %v", w.hv.calls)
	}
	if used, _ := w.quota.state(alice.UserID); used != (domain.Usage{}) {
		t.Fatalf("usage %+v after the delete", used)
	}
}

// Parallel resizes of one user's VMs against tight limits: what quota-service holds never passes
// them, and what the VMs take ends within them.
func TestQuota_ParallelResizes_NeverPastTheLimits(t *testing.T) {
	w := newWorld()
	var vms []*domain.VM
	for _, name := range []string{"a", "b", "c", "d"} {
		vms = append(vms, w.vm(t, alice, name))
	}
	w.quota.limits = domain.Usage{VMs: 4, CPU: 8, MemoryMiB: 1024}
	resize := app.ResizeVMHandler{Repo: w.repo, Quota: w.quota, Hypervisor: w.hv, Now: clock}
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() {
			_, _ = resize.Handle(context.Background(), size(alice, domain.ByUUID(vms[i%4].UUID), 1+i%4, 64*(1+i%8)))
			if used, _ := w.quota.state(alice.UserID); used.CPU > 8 || used.MemoryMiB > 1024 {
				t.Errorf("held %+v past the limits", used)
			}
		})
	}
	wg.Wait()
	used, _ := w.repo.Usage(context.Background(), alice.UserID)
	if used.CPU > 8 || used.MemoryMiB > 1024 {
		t.Fatalf("the VMs take %+v, past the limits", used)
	}
}
