package service_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"limen/libs/contract"
)

func TestQuota_Reserved_Committed_AndFreedByTheDelete(t *testing.T) {
	s := newStack(t)
	alice := s.token(1, "user")
	vm := s.create(alice, "web")
	if code, _, msg := s.action(alice, vm.UUID, `{"action":"update","cpu":2,"memory":256}`); code != http.StatusOK {
		t.Fatalf("resize: %d %s", code, msg)
	}
	if used, pending := s.quota.state(1); used != (contract.OwnerUsage{VMs: 1, CPU: 2, Memory: 256}) || pending != 0 {
		t.Fatalf("quota-service holds %+v, %d pending", used, pending)
	}
	if a := s.call("DELETE", "/api/vms/"+vm.UUID, alice, ""); a.status != http.StatusOK {
		t.Fatalf("delete: %d %s", a.status, a.body)
	}
	if used, _ := s.quota.state(1); used != (contract.OwnerUsage{}) {
		t.Fatalf("quota-service holds %+v after the delete", used)
	}
}

func TestQuota_ServiceDown_Growth503_NothingMade_StartStopDeleteWork(t *testing.T) {
	s := newStack(t)
	alice := s.token(1, "user")
	vm := s.create(alice, "web")
	s.quota.Close()
	a := s.call("POST", "/api/vms", alice, `{"name":"second","cpu":1,"memory":64,"os_type":"other"}`)
	if a.status != http.StatusServiceUnavailable || string(a.body) != `{"code":503,"message":"Quota service unavailable"}` {
		t.Fatalf("create with quota-service away: %d %s", a.status, a.body)
	}
	if code, _, msg := s.action(alice, vm.UUID, `{"action":"update","cpu":2}`); code != http.StatusServiceUnavailable || msg != `{"code":503,"message":"Quota service unavailable"}` {
		t.Fatalf("growth with quota-service away: %d %s", code, msg)
	}
	if domains, _, err := s.libvirt().ConnectListAllDomains(1, 0); err != nil || len(domains) != 1 {
		t.Fatalf("domains: %d (%v)", len(domains), err)
	}
	for _, action := range []string{"start", "force_stop"} {
		if code, _, msg := s.action(alice, vm.UUID, `{"action":"`+action+`"}`); code != http.StatusOK {
			t.Fatalf("%s with quota-service away: %d %s", action, code, msg)
		}
	}
	if a := s.call("DELETE", "/api/vms/"+vm.UUID, alice, ""); a.status != http.StatusOK {
		t.Fatalf("delete with quota-service away: %d %s", a.status, a.body)
	}
}

// quotaStandIn is quota-service's internal API as vm-service's component tests need it: one set of
// limits for every user, usage as the committed VMs plus the growth of pending reservations, each
// reservation admitted under one lock. quota-service itself is a module of its own (its internal
// packages cannot be imported here); the real pair is tested through deployments/local.
type quotaStandIn struct {
	*httptest.Server
	mu      sync.Mutex
	limits  contract.OwnerUsage
	vms     map[string]quotaVM
	pending map[string]contract.QuotaReserve
}

type quotaVM struct {
	owner       int64
	cpu, memory int
}

func newQuotaStandIn(t testing.TB, token string) *quotaStandIn {
	q := &quotaStandIn{limits: contract.OwnerUsage{VMs: 100, CPU: 100, Memory: 1 << 20}, vms: map[string]quotaVM{},
		pending: map[string]contract.QuotaReserve{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+contract.InternalReservationsRoute, q.reserve)
	mux.HandleFunc("POST "+contract.InternalPrefix+"/quota/reservations/{key}/commit", q.commit)
	mux.HandleFunc("POST "+contract.InternalPrefix+"/quota/reservations/{key}/release", q.release)
	mux.HandleFunc("POST "+contract.InternalPrefix+"/quota/vms/{uuid}/release", q.releaseVM)
	q.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token {
			quotaRefusal(w, http.StatusUnauthorized, "Invalid service token")
			return
		}
		q.mu.Lock()
		defer q.mu.Unlock()
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(q.Close)
	return q
}

// limit sets every user's limits.
func (q *quotaStandIn) limit(vms, cpu, memory int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.limits = contract.OwnerUsage{VMs: vms, CPU: cpu, Memory: memory}
}

// state is what owner holds (pending growth included) and how many reservations are pending.
func (q *quotaStandIn) state(owner int64) (contract.OwnerUsage, int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.usage(owner), len(q.pending)
}

// usage is what owner holds, pending growth included.
func (q *quotaStandIn) usage(owner int64) contract.OwnerUsage {
	var u contract.OwnerUsage
	for _, v := range q.vms {
		if v.owner == owner {
			u.VMs, u.CPU, u.Memory = u.VMs+1, u.CPU+v.cpu, u.Memory+v.memory
		}
	}
	for _, r := range q.pending {
		if r.UserID == owner {
			u.VMs, u.CPU, u.Memory = u.VMs+max(r.VMs, 0), u.CPU+max(r.CPU, 0), u.Memory+max(r.Memory, 0)
		}
	}
	return u
}

func (q *quotaStandIn) reserve(w http.ResponseWriter, r *http.Request) {
	var in contract.QuotaReserve
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.Key == "" || len(in.Key) > contract.MaxReservationKey {
		quotaRefusal(w, http.StatusBadRequest, "Invalid reservation")
		return
	}
	if _, ok := q.pending[in.Key]; ok {
		quotaAnswer(w, http.StatusOK, in, contract.ReservationPending)
		return
	}
	used := q.usage(in.UserID)
	for _, c := range []struct {
		name             string
		used, add, limit int
	}{{"vms", used.VMs, in.VMs, q.limits.VMs}, {"cpu", used.CPU, in.CPU, q.limits.CPU}, {"memory", used.Memory, in.Memory, q.limits.Memory}} {
		if c.add > 0 && c.used+c.add > c.limit {
			quotaRefusal(w, http.StatusForbidden, fmt.Sprintf("Quota exceeded: %s %d/%d", c.name, c.used+c.add, c.limit))
			return
		}
	}
	q.pending[in.Key] = in
	quotaAnswer(w, http.StatusCreated, in, contract.ReservationPending)
}

func (q *quotaStandIn) commit(w http.ResponseWriter, r *http.Request) {
	var in contract.QuotaCommit
	reserved, ok := q.pending[r.PathValue("key")]
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil || !ok {
		quotaRefusal(w, http.StatusNotFound, "Reservation not found")
		return
	}
	delete(q.pending, reserved.Key)
	q.vms[reserved.VMUUID] = quotaVM{owner: reserved.UserID, cpu: in.CPU, memory: in.Memory}
	quotaAnswer(w, http.StatusOK, reserved, contract.ReservationCommitted)
}

func (q *quotaStandIn) release(w http.ResponseWriter, r *http.Request) {
	reserved, ok := q.pending[r.PathValue("key")]
	if !ok {
		quotaRefusal(w, http.StatusNotFound, "Reservation not found")
		return
	}
	delete(q.pending, reserved.Key)
	quotaAnswer(w, http.StatusOK, reserved, contract.ReservationCommitted)
}

func (q *quotaStandIn) releaseVM(w http.ResponseWriter, r *http.Request) {
	vm := r.PathValue("uuid")
	delete(q.vms, vm)
	for k, p := range q.pending {
		if strings.EqualFold(p.VMUUID, vm) {
			delete(q.pending, k)
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

func quotaAnswer(w http.ResponseWriter, status int, r contract.QuotaReserve, state string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(contract.QuotaReservation{Key: r.Key, UserID: r.UserID, VMUUID: r.VMUUID, VMs: r.VMs,
		CPU: r.CPU, Memory: r.Memory, State: state})
}

func quotaRefusal(w http.ResponseWriter, status int, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"code": status, "message": message})
}
