package domain_test

import (
	"strings"
	"testing"
	"time"

	"limen/libs/failure"
	"limen/vm-service/internal/domain"
)

var (
	now    = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	ubuntu = domain.OSType{Name: "ubuntu-server", DiskGB: 20, DefaultMemory: 2048}
)

func stoppedVM(t *testing.T) *domain.VM {
	t.Helper()
	vm, err := domain.NewVM(7, "web-1", 2, 2048, ubuntu, now)
	if err != nil {
		t.Fatal(err)
	}
	return vm
}

func TestNewVM_StartsStoppedAtVersionOne(t *testing.T) {
	vm := stoppedVM(t)
	if vm.Status != domain.StatusStopped || vm.Version != 1 || vm.DiskGB != 20 || vm.OSType != "ubuntu-server" {
		t.Fatalf("unexpected VM %+v", vm)
	}
}

func TestNewVM_RejectsBadInput_NamingTheField(t *testing.T) {
	cases := []struct {
		name      string
		vmName    string
		cpu, mem  int
		wantField string
	}{
		{"empty name", "", 1, 64, "'name'"},
		{"long name", strings.Repeat("a", 65), 1, 64, "'name'"},
		{"bad char", "web/1", 1, 64, "'name'"},
		{"no cpu", "ok", 0, 64, "'cpu'"},
		{"too many cpu", "ok", 65, 64, "'cpu'"},
		{"too little memory", "ok", 1, 63, "'memory'"},
		{"too much memory", "ok", 1, 262145, "'memory'"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := domain.NewVM(1, tc.vmName, tc.cpu, tc.mem, ubuntu, now)
			if failure.KindOf(err) != failure.Invalid || !strings.Contains(err.Error(), tc.wantField) {
				t.Fatalf("got %v", err)
			}
		})
	}
}

func TestParseAction_Unknown_ListsValidActions(t *testing.T) {
	_, err := domain.ParseAction("explode")
	want := "Invalid action: explode. Valid actions: start, stop, restart, delete, update, pause, resume, force_stop"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v", err)
	}
}

func TestBeginPower_FollowsTheStateMachine(t *testing.T) {
	cases := []struct {
		from   domain.Status
		action domain.Action
		to     domain.Status
		ok     bool
	}{
		{domain.StatusStopped, domain.ActionStart, domain.StatusRunning, true},
		{domain.StatusRunning, domain.ActionStart, "", false},
		{domain.StatusRunning, domain.ActionStop, domain.StatusStopped, true},
		{domain.StatusPaused, domain.ActionStop, domain.StatusStopped, true},
		{domain.StatusStopped, domain.ActionStop, "", false},
		{domain.StatusError, domain.ActionForceStop, domain.StatusStopped, true},
		{domain.StatusRunning, domain.ActionRestart, domain.StatusRunning, true},
		{domain.StatusRunning, domain.ActionPause, domain.StatusPaused, true},
		{domain.StatusPaused, domain.ActionResume, domain.StatusRunning, true},
		{domain.StatusRunning, domain.ActionResume, "", false},
	}
	for _, tc := range cases {
		t.Run(string(tc.from)+"/"+string(tc.action), func(t *testing.T) {
			vm := stoppedVM(t)
			vm.Status = tc.from
			to, err := vm.BeginPower(tc.action)
			if tc.ok != (err == nil) || to != tc.to {
				t.Fatalf("got %q, %v", to, err)
			}
			if err != nil && (failure.KindOf(err) != failure.Conflict || !strings.Contains(err.Error(), string(tc.from))) {
				t.Fatalf("conflict must name the state: %v", err)
			}
		})
	}
}

func TestResize_RunningVM_IsAConflict(t *testing.T) {
	vm := stoppedVM(t)
	vm.Status = domain.StatusRunning
	if err := vm.Resize(4, 4096, now); failure.KindOf(err) != failure.Conflict {
		t.Fatalf("got %v", err)
	}
	vm.Status = domain.StatusStopped
	if err := vm.Resize(4, 4096, now); err != nil || vm.CPU != 4 || vm.MemoryMiB != 4096 || vm.Version != 2 {
		t.Fatalf("resize: %v %+v", err, vm)
	}
}

func TestObserveStatus_OnlyCountsRealChanges(t *testing.T) {
	vm := stoppedVM(t)
	if vm.ObserveStatus(domain.StatusStopped, "", now) {
		t.Fatal("no-op observation reported a change")
	}
	if !vm.ObserveStatus(domain.StatusError, "domain missing from libvirt", now) || vm.Version != 2 {
		t.Fatalf("change not recorded: %+v", vm)
	}
}

func TestVisibleTo_OwnerOrAdmin(t *testing.T) {
	vm := stoppedVM(t)
	if !vm.VisibleTo(7, false) || vm.VisibleTo(8, false) || !vm.VisibleTo(8, true) {
		t.Fatal("visibility rule broken")
	}
}
