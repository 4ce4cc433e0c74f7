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
	vm.EndTask()
	if vm.Busy() || vm.Task != "" || vm.TaskOwner != uuid.Nil {
		t.Fatal("busy after EndTask")
	}
}
