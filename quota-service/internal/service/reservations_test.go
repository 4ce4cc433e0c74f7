package service_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"limen/libs/contract"
	"limen/quota-service/internal/service"
)

// 50 creates at once by one user whose limit is 3 VMs: exactly 3 are admitted.
func TestReserve_ConcurrentCreatesAdmitExactlyTheLimit(t *testing.T) {
	s := newStack(t)
	s.setLimits(5, `"max_vms":3`)
	const n = 50
	answers := make([]answer, n)
	keys := make([]string, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			vm := uuid.NewString()
			keys[i] = "create:" + vm
			<-start
			answers[i], _ = s.reserve(keys[i], 5, vm, 1, 1, 64)
		})
	}
	close(start)
	wg.Wait()
	admitted := 0
	for i, a := range answers {
		switch a.status {
		case http.StatusCreated:
			admitted++
			if a := s.commit(keys[i], 1, 64, 1); a.status != http.StatusOK {
				t.Errorf("commit: %d %s", a.status, a.body)
			}
		case http.StatusForbidden:
			if msg := a.message(t); msg != "Quota exceeded: vms 4/3" {
				t.Errorf("refusal %q", msg)
			}
		default:
			t.Errorf("answer %d %s", a.status, a.body)
		}
	}
	if admitted != 3 {
		t.Errorf("%d of %d admitted, want 3", admitted, n)
	}
	if q := s.quota(5); q.Usage != (usage{VMs: 3, CPU: 3, Memory: 192}) {
		t.Errorf("usage %+v, want 3 VMs", q.Usage)
	}
	s.checkInvariant()
}

// 40 resizes at once raising cpu and memory against tight limits: usage is never above a limit,
// after any answer, and ends as the committed sizes say.
func TestReserve_ConcurrentGrowthsNeverPassTheLimits(t *testing.T) {
	s := newStack(t)
	const n = 40
	s.setLimits(5, `"max_vms":40,"max_cpu":60,"max_memory":4000`)
	vms := make([]string, n)
	for i := range vms {
		vms[i] = s.createVM(5, 1, 64)
	}
	var mu sync.Mutex
	var violations []string
	want := usage{VMs: n, CPU: n, Memory: n * 64}
	check := func(after string) {
		u := s.stored(5)
		if u.CPU > 60 || u.Memory > 4000 || u.VMs > 40 {
			mu.Lock()
			violations = append(violations, fmt.Sprintf("%+v after %s", u, after))
			mu.Unlock()
		}
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	admitted := 0
	for i, vm := range vms {
		wg.Go(func() {
			cpu, memory := 1+i%2, 64*(1+i%3)
			key := fmt.Sprintf("resize:%s:2", vm)
			<-start
			a, _ := s.reserve(key, 5, vm, 0, cpu, memory)
			check("a reserve answered " + fmt.Sprint(a.status))
			switch a.status {
			case http.StatusForbidden:
				if msg := a.message(t); !strings.HasPrefix(msg, "Quota exceeded: cpu ") && !strings.HasPrefix(msg, "Quota exceeded: memory ") {
					t.Errorf("refusal %q", msg)
				}
				return
			case http.StatusCreated:
			default:
				t.Errorf("reserve: %d %s", a.status, a.body)
				return
			}
			if i%4 == 0 { // the hypervisor refused the resize
				if a := s.release(key); a.status != http.StatusOK {
					t.Errorf("release: %d %s", a.status, a.body)
				}
				check("a release")
				return
			}
			if a := s.commit(key, 1+cpu, 64+memory, 2); a.status != http.StatusOK {
				t.Errorf("commit: %d %s", a.status, a.body)
			}
			check("a commit")
			mu.Lock()
			admitted++
			want.CPU += cpu
			want.Memory += memory
			mu.Unlock()
		})
	}
	close(start)
	wg.Wait()
	for _, v := range violations {
		t.Errorf("over a limit: %s", v)
	}
	if admitted == 0 || admitted == n*3/4 {
		t.Errorf("%d resizes committed: the limits were not tight", admitted)
	}
	if q := s.quota(5); q.Usage != want {
		t.Errorf("usage %+v, want the committed sizes %+v", q.Usage, want)
	}
	s.checkInvariant()
}

func TestReserve_SameKeyCountsOnce(t *testing.T) {
	s := newStack(t)
	vm := uuid.NewString()
	a, first := s.reserve("create:"+vm, 5, vm, 1, 2, 512)
	if a.status != http.StatusCreated || first.State != "pending" || first.Key != "create:"+vm || first.VMUUID != vm ||
		first.UserID != 5 || first.VMs != 1 || first.CPU != 2 || first.Memory != 512 || !first.ExpiresAt.After(time.Now()) {
		t.Fatalf("first: %d %+v", a.status, first)
	}
	a, again := s.reserve("create:"+vm, 5, vm, 1, 2, 512)
	if a.status != http.StatusOK || again != first {
		t.Errorf("again: %d %+v, want 200 %+v", a.status, again, first)
	}
	if u := s.stored(5); u != (usage{VMs: 1, CPU: 2, Memory: 512}) {
		t.Errorf("usage after a repeat: %+v", u)
	}

	// The same new key from ten callers at once: one reservation.
	other := uuid.NewString()
	statuses := make([]int, 10)
	var wg sync.WaitGroup
	for i := range statuses {
		wg.Go(func() {
			a, _ := s.reserve("create:"+other, 5, other, 1, 1, 64)
			statuses[i] = a.status
		})
	}
	wg.Wait()
	created := 0
	for _, st := range statuses {
		switch st {
		case http.StatusCreated:
			created++
		case http.StatusOK:
		default:
			t.Errorf("concurrent repeat answered %d", st)
		}
	}
	if created != 1 {
		t.Errorf("%d of 10 concurrent repeats created a reservation", created)
	}
	if u := s.stored(5); u != (usage{VMs: 2, CPU: 3, Memory: 576}) {
		t.Errorf("usage after concurrent repeats: %+v", u)
	}

	if a, _ := s.reserve("create:"+vm, 5, vm, 1, 4, 512); a.status != http.StatusConflict || a.message(t) != "Reservation key already used for another change" {
		t.Errorf("a key used for another change: %d %s", a.status, a.body)
	}
	for range 2 {
		a := s.commit("create:"+vm, 2, 512, 1)
		var r contract.QuotaReservation
		a.decode(t, &r)
		if a.status != http.StatusOK || r.State != "committed" {
			t.Errorf("commit: %d %s", a.status, a.body)
		}
	}
	if a, r := s.reserve("create:"+vm, 5, vm, 1, 2, 512); a.status != http.StatusOK || r.State != "committed" {
		t.Errorf("the key again after its commit: %d %s", a.status, a.body)
	}
	if a := s.release("create:" + vm); a.status != http.StatusConflict || a.message(t) != "Reservation already committed" {
		t.Errorf("release after commit: %d %s", a.status, a.body)
	}
	for range 2 {
		if a := s.release("create:" + other); a.status != http.StatusOK || !strings.Contains(string(a.body), `"state":"released"`) {
			t.Errorf("release: %d %s", a.status, a.body)
		}
	}
	if a, _ := s.reserve("create:"+other, 5, other, 1, 1, 64); a.status != http.StatusConflict || a.message(t) != "Reservation already released" {
		t.Errorf("the key again after its release: %d %s", a.status, a.body)
	}
	if a := s.commit("create:"+other, 1, 64, 1); a.status != http.StatusConflict || a.message(t) != "Reservation already released" {
		t.Errorf("commit after release: %d %s", a.status, a.body)
	}
	for _, a := range []answer{s.commit("create:nobody", 1, 64, 1), s.release("create:nobody"), s.release("bad%20key")} {
		if a.status != http.StatusNotFound || a.message(t) != "Reservation not found" {
			t.Errorf("an unknown key: %d %s", a.status, a.body)
		}
	}
	if u := s.stored(5); u != (usage{VMs: 1, CPU: 2, Memory: 512}) {
		t.Errorf("usage at the end: %+v", u)
	}
	s.checkInvariant()
}

func TestReserve_BadInputIsRefusedAndChangesNothing(t *testing.T) {
	s := newStack(t)
	vm := uuid.NewString()
	s.createVM(5, 1, 64)
	reserve := func(body string) answer {
		return s.call("POST", contract.InternalReservationsRoute, internalToken, body)
	}
	for _, c := range []struct {
		name    string
		a       answer
		status  int
		message string
	}{
		{"no key", reserve(fmt.Sprintf(`{"user_id":5,"vm_uuid":%q,"vms":1}`, vm)), 400, "Field 'key' must be 1 to 128 letters, digits, '.', '_', ':' or '-'"},
		{"a key with a slash", reserve(fmt.Sprintf(`{"key":"a/b","user_id":5,"vm_uuid":%q,"vms":1}`, vm)), 400, "Field 'key' must be 1 to 128 letters, digits, '.', '_', ':' or '-'"},
		{"a long key", reserve(fmt.Sprintf(`{"key":%q,"user_id":5,"vm_uuid":%q,"vms":1}`, strings.Repeat("k", 129), vm)), 400, "Field 'key' must be 1 to 128 letters, digits, '.', '_', ':' or '-'"},
		{"no user", reserve(fmt.Sprintf(`{"key":"k","vm_uuid":%q,"vms":1}`, vm)), 400, "Field 'user_id' must be at least 1"},
		{"no VM", reserve(`{"key":"k","user_id":5,"vms":1}`), 400, "Field 'vm_uuid' must be a UUID"},
		{"a bad VM", reserve(`{"key":"k","user_id":5,"vm_uuid":"x","vms":1}`), 400, "Field 'vm_uuid' must be a UUID"},
		{"absurd cpu", reserve(fmt.Sprintf(`{"key":"k","user_id":5,"vm_uuid":%q,"cpu":64001}`, vm)), 400, "Field 'cpu' must be between -64000 and 64000"},
		{"absurd memory", reserve(fmt.Sprintf(`{"key":"k","user_id":5,"vm_uuid":%q,"memory":-262144001}`, vm)), 400, "Field 'memory' must be between -262144000 and 262144000"},
		{"a fraction", reserve(fmt.Sprintf(`{"key":"k","user_id":5,"vm_uuid":%q,"cpu":1.5}`, vm)), 400, "Invalid value for field 'cpu': expected number"},
		{"malformed", reserve(`{"key":`), 400, "Invalid JSON body"},
		{"commit version 0", s.commit("k", 1, 64, 0), 400, "Field 'version' must be at least 1"},
		{"commit negative cpu", s.commit("k", -1, 64, 1), 400, "Field 'cpu' must be between 0 and 64000"},
		{"release of a bad VM", s.releaseVM("not-a-uuid", 5), 400, "Invalid VM uuid: not-a-uuid"},
		{"release of a VM without owner", s.releaseVM(vm, 0), 400, "Field 'user_id' must be at least 1"},
	} {
		if c.a.status != c.status || c.a.message(t) != c.message {
			t.Errorf("%s: %d %s, want %d %q", c.name, c.a.status, c.a.body, c.status, c.message)
		}
	}
	if u := s.stored(5); u != (usage{VMs: 1, CPU: 1, Memory: 64}) {
		t.Errorf("refused requests changed usage: %+v", u)
	}
	var n int
	if err := s.Pool.QueryRow(s.Ctx, `SELECT count(*) FROM reservations`).Scan(&n); err != nil || n != 1 {
		t.Errorf("%d reservations (%v), want the one of the VM", n, err)
	}
}

func TestInternal_RequiresTheServiceToken(t *testing.T) {
	s := newStack(t)
	vm := uuid.NewString()
	routes := []struct{ path, body string }{
		{contract.InternalReservationsRoute, fmt.Sprintf(`{"key":"k","user_id":5,"vm_uuid":%q,"vms":1}`, vm)},
		{contract.InternalReservationCommitPath("k"), `{"cpu":1,"memory":64,"version":1}`},
		{contract.InternalReservationReleasePath("k"), ""},
		{contract.InternalQuotaVMReleasePath(vm), `{"user_id":5}`},
	}
	for _, token := range []string{"", "wrong", s.token(1, "admin")} {
		for _, r := range routes {
			if a := s.call("POST", r.path, token, r.body); a.status != http.StatusUnauthorized || a.message(t) != "Authentication required" {
				t.Errorf("POST %s with %q: %d %s", r.path, token, a.status, a.body)
			}
		}
	}
	var n int
	if err := s.Pool.QueryRow(s.Ctx, `SELECT (SELECT count(*) FROM reservations) + (SELECT count(*) FROM vms) + (SELECT count(*) FROM quotas)`).Scan(&n); err != nil || n != 0 {
		t.Errorf("refused requests stored %d rows (%v)", n, err)
	}
}

// A reservation nobody commits or releases (its caller crashed) stops holding its growth.
func TestReservation_ExpiresWhenNeitherCommittedNorReleased(t *testing.T) {
	s := newStack(t, func(c *service.Config) { c.ReservationTTL = 300 * time.Millisecond })
	vm := uuid.NewString()
	a, r := s.reserve("create:"+vm, 5, vm, 1, 2, 256)
	if a.status != http.StatusCreated || r.ExpiresAt.After(time.Now().Add(2*time.Second)) {
		t.Fatalf("reserve: %d %+v", a.status, r)
	}
	if u := s.stored(5); u != (usage{VMs: 1, CPU: 2, Memory: 256}) {
		t.Fatalf("held: %+v", u)
	}
	eventually(t, "the hold is freed", func() bool { return s.stored(5) == usage{} })
	if a := s.release("create:" + vm); a.status != http.StatusOK || !strings.Contains(string(a.body), `"state":"expired"`) {
		t.Errorf("release of an expired reservation: %d %s", a.status, a.body)
	}
	if a, _ := s.reserve("create:"+vm, 5, vm, 1, 2, 256); a.status != http.StatusConflict || a.message(t) != "Reservation expired" {
		t.Errorf("the key again: %d %s", a.status, a.body)
	}
	// The VM was made after all: a late commit counts it.
	if a := s.commit("create:"+vm, 2, 256, 1); a.status != http.StatusOK || !strings.Contains(string(a.body), `"state":"committed"`) {
		t.Errorf("late commit: %d %s", a.status, a.body)
	}
	if u := s.stored(5); u != (usage{VMs: 1, CPU: 2, Memory: 256}) {
		t.Errorf("after the late commit: %+v", u)
	}
	s.checkInvariant()
}

// Deleting a VM frees what it took and what was still reserved for it; a VM quota-service never
// counted is remembered as gone, so a late report of it counts nothing.
func TestReleaseVM_FreesItsUsageAndReservations(t *testing.T) {
	s := newStack(t)
	vm := s.createVM(5, 2, 1024)
	if a, _ := s.reserve("resize:"+vm, 5, vm, 0, 2, 1024); a.status != http.StatusCreated {
		t.Fatalf("resize: %d %s", a.status, a.body)
	}
	for range 2 {
		if a := s.releaseVM(vm, 5); a.status != http.StatusNoContent {
			t.Fatalf("release: %d %s", a.status, a.body)
		}
	}
	if u := s.stored(5); u != (usage{}) {
		t.Errorf("after the deletion: %+v", u)
	}
	if a := s.commit("resize:"+vm, 4, 2048, 3); a.status != http.StatusConflict {
		t.Errorf("commit of a resize of a deleted VM: %d %s", a.status, a.body)
	}
	stranger := uuid.NewString()
	if a := s.releaseVM(stranger, 5); a.status != http.StatusNoContent {
		t.Fatalf("release of an unknown VM: %d %s", a.status, a.body)
	}
	if a, _ := s.reserve("create:"+stranger, 5, stranger, 1, 1, 64); a.status != http.StatusCreated {
		t.Fatalf("reserve: %d %s", a.status, a.body)
	}
	if a := s.commit("create:"+stranger, 1, 64, 1); a.status != http.StatusOK {
		t.Fatalf("commit: %d %s", a.status, a.body)
	}
	if u := s.stored(5); u != (usage{}) {
		t.Errorf("a deleted VM counted again: %+v", u)
	}
	s.checkInvariant()
}
