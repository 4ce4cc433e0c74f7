package domain_test

import (
	"testing"
	"time"

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
		if _, err := domain.ParseRef(bad); domain.KindOf(err) != domain.KindInvalid {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestTask_BusyUntilEndedOrStale(t *testing.T) {
	vm := stoppedVM(t)
	if err := vm.BeginTask(domain.ActionStart, now); err != nil {
		t.Fatal(err)
	}
	err := vm.BeginTask(domain.ActionForceStop, now.Add(time.Minute))
	if domain.KindOf(err) != domain.KindConflict || err.Error() != "VM is busy: start in progress" {
		t.Fatalf("got %v", err)
	}
	if err := vm.BeginTask(domain.ActionDelete, now.Add(domain.TaskStaleAfter)); err != nil {
		t.Fatalf("a stale task still blocks: %v", err)
	}
	vm.EndTask()
	if vm.Busy(now) {
		t.Fatal("busy after EndTask")
	}
}
