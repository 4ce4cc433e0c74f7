package domain_test

import (
	"testing"
	"time"

	"github.com/google/uuid"

	"limen/vm-service/internal/domain"
)

func TestStatsOf_CPUFromTwoSamplesOfOneRun(t *testing.T) {
	at := time.Date(2026, 1, 1, 0, 0, 10, 0, time.UTC)
	vm := &domain.VM{ID: 3, UUID: uuid.New(), Status: domain.StatusRunning}
	prev := &domain.MachineSample{At: at.Add(-5 * time.Second), Run: 7, CPUTime: 2 * time.Second, VCPUs: 2}
	cur := &domain.MachineSample{At: at, Run: 7, CPUTime: 7 * time.Second, VCPUs: 2, MemoryKiB: 2 << 20, UsedKiB: 512 << 10,
		DiskRead: 10, DiskWrite: 20, NetRx: 30, NetTx: 40, RunSince: at.Add(-90*time.Second - 300*time.Millisecond)}
	got := domain.StatsOf(vm, prev, cur, at.Add(time.Second))
	want := domain.Stats{VMID: 3, VMUUID: vm.UUID, Status: domain.StatusRunning, CPUPercent: 50, MemoryUsedMiB: 512,
		MemoryMiB: 2048, MemoryPercent: 25, VCPUs: 2, DiskRead: 10, DiskWrite: 20, NetRx: 30, NetTx: 40,
		Uptime: 90 * time.Second, At: at}
	if got != want {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}

	// A new run (the machine restarted between the samples), or none before: no CPU use yet.
	other := *prev
	other.Run = 8
	for _, p := range []*domain.MachineSample{&other, nil} {
		if s := domain.StatsOf(vm, p, cur, at); s.CPUPercent != 0 || s.MemoryUsedMiB != 512 {
			t.Fatalf("with %+v before: %+v", p, s)
		}
	}
	// More in use than the guest has (QEMU's own memory on the host): at most all of it.
	host := *cur
	host.UsedKiB = 3 << 20
	if s := domain.StatsOf(vm, prev, &host, at); s.MemoryUsedMiB != 2048 || s.MemoryPercent != 100 {
		t.Fatalf("over the guest's memory: %+v", s)
	}
	// Not running: zeros and the status, whatever was sampled.
	stopped := &domain.VM{ID: 3, UUID: vm.UUID, Status: domain.StatusStopped}
	if s := domain.StatsOf(stopped, prev, cur, at); s != (domain.Stats{VMID: 3, VMUUID: vm.UUID, Status: domain.StatusStopped, At: at}) {
		t.Fatalf("stopped: %+v", s)
	}
}

func TestConsoleTicket_AdmitsItsVMOnlyUntilItExpires(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	vm := &domain.VM{UUID: uuid.New(), OwnerID: 5}
	ticket := domain.ConsoleTicket{VMUUID: vm.UUID, UserID: 5, ExpiresAt: now.Add(time.Minute)}
	if !ticket.Admits(vm, now) || ticket.Admits(vm, now.Add(time.Minute)) || ticket.Admits(&domain.VM{UUID: uuid.New(), OwnerID: 5}, now) {
		t.Fatal("a ticket admits its own VM, before it expires, only")
	}
	admins := domain.ConsoleTicket{VMUUID: vm.UUID, UserID: 1, Admin: true, ExpiresAt: now.Add(time.Minute)}
	if !admins.Admits(vm, now) || (domain.ConsoleTicket{VMUUID: vm.UUID, UserID: 1, ExpiresAt: now.Add(time.Minute)}).Admits(vm, now) {
		t.Fatal("an admin's ticket admits another's VM, a user's does not")
	}
	for _, s := range []string{"", "vnc", "serial"} {
		if _, err := domain.ParseConsoleProtocol(s); err != nil {
			t.Errorf("%q: %v", s, err)
		}
	}
	if _, err := domain.ParseConsoleProtocol("spice"); err == nil {
		t.Error("spice accepted")
	}
}
