package domain_test

import (
	"testing"
	"time"

	"github.com/google/uuid"

	"limen/libs/failure"
	"limen/vm-service/internal/domain"
)

func TestParseRef(t *testing.T) {
	if r, err := domain.ParseRef("42"); err != nil || r.ID != 42 {
		t.Fatalf("id: %+v %v", r, err)
	}
	if r, err := domain.ParseRef("7c4e0f4e-58a4-4c4c-9a3f-1f0b3b6c2d10"); err != nil || r.UUID.String() != "7c4e0f4e-58a4-4c4c-9a3f-1f0b3b6c2d10" {
		t.Fatalf("uuid: %+v %v", r, err)
	}
	for _, bad := range []string{"0", "-1", "abc", "7c4e0f4e58a44c4c9a3f1f0b3b6c2d10", "{7c4e0f4e-58a4-4c4c-9a3f-1f0b3b6c2d10}", "99999999999999999999"} {
		if _, err := domain.ParseRef(bad); failure.KindOf(err) != failure.Invalid {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestTask_BusyWhileItsProcessLives(t *testing.T) {
	vm := stoppedVM(t)
	first, second := uuid.New(), uuid.New()
	if err := vm.BeginTask(domain.ActionStart, first, now); err != nil {
		t.Fatal(err)
	}
	// However old the claim, it blocks as long as its process heartbeats.
	err := vm.BeginTask(domain.ActionForceStop, second, now.Add(time.Hour))
	if failure.KindOf(err) != failure.Busy || err.Error() != "VM is busy: start in progress" {
		t.Fatalf("got %v", err)
	}
	// Its process died (read as such with the VM): another process takes the VM over at once.
	vm.TaskLive = false
	if vm.Busy() {
		t.Fatal("a dead process's task still counts as busy")
	}
	if err := vm.BeginTask(domain.ActionDelete, second, now.Add(time.Second)); err != nil {
		t.Fatalf("a dead process's task still blocks: %v", err)
	}
	if vm.HoldsTask(domain.ActionStart, first) || !vm.HoldsTask(domain.ActionDelete, second) {
		t.Fatalf("task owner after the take-over: %+v", vm)
	}
	vm.EndTask(now)
	if vm.Busy() || vm.Task != "" || vm.TaskOwner != uuid.Nil {
		t.Fatal("busy after EndTask")
	}
}

// A force stop takes over a running graceful stop; nothing else takes over anything. Beginning and
// ending a task are changes (the task shows), so each moves the version.
func TestTask_ForceStopOverridesAStop_TasksAreChanges(t *testing.T) {
	vm := stoppedVM(t)
	first, second := uuid.New(), uuid.New()
	version := vm.Version
	if err := vm.BeginTask(domain.ActionStop, first, now); err != nil || vm.Version != version+1 {
		t.Fatalf("stop: %v, version %d after %d", err, vm.Version, version)
	}
	for _, a := range []domain.Action{domain.ActionStop, domain.ActionStart, domain.ActionDelete, domain.ActionUpdate, domain.ActionRestart} {
		if err := vm.BeginTask(a, second, now); failure.KindOf(err) != failure.Busy || err.Error() != "VM is busy: stop in progress" {
			t.Fatalf("%s during a stop: %v", a, err)
		}
	}
	if err := vm.BeginTask(domain.ActionForceStop, second, now.Add(time.Second)); err != nil || !vm.HoldsTask(domain.ActionForceStop, second) {
		t.Fatalf("force stop during a stop: %v %+v", err, vm)
	}
	if err := vm.BeginTask(domain.ActionForceStop, first, now); failure.KindOf(err) != failure.Busy || err.Error() != "VM is busy: force stop in progress" {
		t.Fatalf("a second force stop: %v", err)
	}
	version = vm.Version
	vm.EndTask(now)
	if vm.Version != version+1 {
		t.Fatalf("version %d after %d", vm.Version, version)
	}
	if !domain.ActionStop.Overridable() || domain.ActionForceStop.Overridable() || domain.ActionStart.Overridable() {
		t.Fatal("only a stop may be taken over")
	}
}
