package service_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"limen/libs/contract"
	"limen/libs/telemetry"
	"limen/quota-service/internal/service"
)

// Usage follows the VMs that exist, as vm-service's events report them, whatever direct call was
// lost.
func TestReconcile_UsageFollowsTheVMsThatExist(t *testing.T) {
	s := newStack(t)

	// vm-service wrote the VM (and its event) but died before the commit: the event settles the
	// reservation, and the VM counts once.
	made := uuid.NewString()
	if a, _ := s.reserve("create:"+made, 5, made, 1, 2, 1024); a.status != http.StatusCreated {
		t.Fatalf("reserve: %d %s", a.status, a.body)
	}
	s.publishVM(made, 5, 2, 1024, 1)
	eventually(t, "the event settles the reservation", func() bool { return s.state("create:"+made) == "committed" })
	if u := s.stored(5); u != (usage{VMs: 1, CPU: 2, Memory: 1024}) {
		t.Errorf("after the event: %+v", u)
	}
	// The commit that arrives after all changes nothing.
	if a := s.commit("create:"+made, 2, 1024, 1); a.status != http.StatusOK {
		t.Errorf("late commit: %d %s", a.status, a.body)
	}

	// A VM quota-service was never told of (made before it ran); a resize whose commit was lost;
	// an older report arriving after a newer one.
	old := uuid.NewString()
	s.publishVM(old, 5, 1, 512, 3)
	s.publishVM(old, 5, 4, 512, 5)
	s.publishVM(old, 5, 1, 512, 4)
	// A deletion whose release never arrived.
	s.publishVMDeleted(made, 5, 2)
	// And a report of a VM that is gone, arriving late.
	s.publishVM(made, 5, 8, 4096, 1)
	marker := uuid.NewString()
	s.publishVM(marker, 6, 1, 64, 1)
	eventually(t, "the events up to the marker are applied", func() bool { return s.storedOK(6) })
	if u := s.stored(5); u != (usage{VMs: 1, CPU: 4, Memory: 512}) {
		t.Errorf("usage %+v, want the one VM that exists at its newest size", u)
	}
	s.checkInvariant()
}

// A vm-service killed between reserve and commit before it wrote the VM: no event ever comes, and
// the hold expires; then usage is the VMs that exist.
func TestReconcile_ACrashBeforeTheVMWasWrittenExpires(t *testing.T) {
	s := newStack(t, func(c *service.Config) { c.ReservationTTL = 200 * time.Millisecond })
	kept := s.createVM(5, 1, 64)
	lost := uuid.NewString()
	if a, _ := s.reserve("create:"+lost, 5, lost, 1, 4, 4096); a.status != http.StatusCreated {
		t.Fatalf("reserve: %d %s", a.status, a.body)
	}
	eventually(t, "the hold expires", func() bool { return s.stored(5) == usage{VMs: 1, CPU: 1, Memory: 64} })
	if a := s.releaseVM(kept, 5); a.status != http.StatusNoContent {
		t.Fatalf("release: %d %s", a.status, a.body)
	}
	if u := s.stored(5); u != (usage{}) {
		t.Errorf("after the last VM went: %+v", u)
	}
	s.checkInvariant()
}

// The periodic check repairs usage that disagrees with the VMs and reservations, and counts it.
func TestReconcile_RepairsDriftAndCountsIt(t *testing.T) {
	tel, err := telemetry.Setup(context.Background(), "quota-service")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	s := newStackWith(t, tel)
	s.createVM(5, 2, 512)
	if _, err := s.Pool.Exec(s.Ctx, `UPDATE quotas SET cpu = cpu + 7, vms = 0 WHERE user_id = 5`); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the drift is repaired", func() bool { return s.stored(5) == usage{VMs: 1, CPU: 2, Memory: 512} })
	a := s.call("GET", "/metrics", "", "")
	if a.status != http.StatusOK || !strings.Contains(string(a.body), "limen_quota_drift_repairs_total") {
		t.Errorf("/metrics has no drift count: %d\n%s", a.status, a.body)
	}
	s.checkInvariant()
}

// A user deleted by an admin loses their quota, and nothing of theirs counts again.
func TestDeletedUser_QuotaRemoved(t *testing.T) {
	s := newStack(t)
	s.setLimits(5, `"max_vms":4`)
	vm := s.createVM(5, 1, 64)
	s.knowUser(5, false)
	s.publish(contract.TopicUserEvents, "5", contract.TypeUserDeleted, 5, 2, contract.UserChange{UserID: 5, TokenVersion: 2})
	eventually(t, "the quota is removed", func() bool { return !s.storedOK(5) })
	var left int
	if err := s.Pool.QueryRow(s.Ctx, `SELECT (SELECT count(*) FROM reservations WHERE user_id = 5) + (SELECT count(*) FROM vms WHERE user_id = 5)`).Scan(&left); err != nil || left != 0 {
		t.Errorf("%d rows of the deleted user left (%v)", left, err)
	}
	if a := s.call("GET", "/api/quota?user_id=5", s.token(1, "admin"), ""); a.status != http.StatusNotFound || a.message(t) != "User not found" {
		t.Errorf("admin's GET: %d %s", a.status, a.body)
	}
	if a, _ := s.reserve("create:x", 5, uuid.NewString(), 1, 1, 64); a.status != http.StatusNotFound || a.message(t) != "User not found" {
		t.Errorf("reserve for the deleted user: %d %s", a.status, a.body)
	}
	if a := s.call("GET", "/api/quota", s.token(5, "user"), ""); a.status != http.StatusUnauthorized {
		t.Errorf("the deleted user's token: %d %s", a.status, a.body)
	}
	// vm-service deletes the user's VMs; their events, and any late one, count nothing again.
	s.publishVM(vm, 5, 1, 64, 2)
	s.publishVMDeleted(vm, 5, 3)
	marker := uuid.NewString()
	s.publishVM(marker, 6, 1, 64, 1)
	eventually(t, "the events up to the marker are applied", func() bool { return s.storedOK(6) })
	if s.storedOK(5) {
		t.Errorf("the deleted user's quota came back: %+v", s.stored(5))
	}
}

// state is the state of the reservation of key, straight from the database.
func (s *stack) state(key string) string {
	s.t.Helper()
	var state string
	_ = s.Pool.QueryRow(context.Background(), `SELECT state FROM reservations WHERE key = $1`, key).Scan(&state)
	return state
}

// storedOK reports whether the user has a quota row.
func (s *stack) storedOK(userID int64) bool {
	s.t.Helper()
	var n int
	if err := s.Pool.QueryRow(context.Background(), `SELECT count(*) FROM quotas WHERE user_id = $1`, userID).Scan(&n); err != nil {
		s.t.Fatal(err)
	}
	return n == 1
}
