package service_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"

	"limen/libs/testkit/kafkatest"
	"limen/libs/testkit/testguest"
	"limen/vm-service/internal/service"
)

// deafGuest creates a VM whose domain boots the test guest, which ignores ACPI, starts it through
// the API (a quick action: 200 with the VM itself) and waits for the guest's shell.
func (s *stack) deafGuest(token, name string) vmJSON {
	s.t.Helper()
	vm, console := s.bootGuest(token, name, 128, testguest.Options{IgnorePowerButton: true})
	console.Close()
	return vm
}

// stopPastTheWait asks for a stop of a guest that ignores ACPI: answered 202 once LIMEN_ACTION_WAIT
// passed, the VM as it is with its running task, which GET and the list show too.
func (s *stack) stopPastTheWait(token, ref string) {
	s.t.Helper()
	asked := time.Now()
	code, vm, msg := s.action(token, ref, `{"action":"stop"}`)
	waited := time.Since(asked)
	if code != http.StatusAccepted || vm.Status != "Running" || vm.Task == nil || vm.Task.Action != "stop" ||
		vm.Task.StartedAt.IsZero() || msg != "VM stop in progress" {
		s.t.Fatalf("stop: %d %+v %s", code, vm, msg)
	}
	if waited < s.cfg.ActionWait || waited > s.cfg.ActionWait+5*time.Second {
		s.t.Fatalf("answered after %v, LIMEN_ACTION_WAIT is %v", waited, s.cfg.ActionWait)
	}
	if got := s.get(token, ref); got.Task == nil || got.Task.Action != "stop" || got.Status != "Running" {
		s.t.Fatalf("GET during the stop: %+v", got)
	}
	a := s.call("GET", "/api/vms", token, "")
	var list []vmJSON
	a.decode(s.t, &list)
	if len(list) != 1 || list[0].Task == nil || list[0].Task.Action != "stop" {
		s.t.Fatalf("list during the stop: %s", a.body)
	}
}

// A stop of a guest that ignores ACPI is answered 202 and goes on; a force stop takes it over and
// answers 200 Stopped, on the same replica or another; the stops never complete afterwards (the VM
// started again keeps running past their timeouts); the events show the task, then the result.
func TestStop_PastTheWait_202_ForceStopOverridesIt(t *testing.T) {
	s := newStack(t, func(c *service.Config) { c.ActionWait = 3 * time.Second; c.StopTimeout = 8 * time.Second })
	alice := s.token(1, "user")
	vm := s.deafGuest(alice, "deaf")
	firstStop := time.Now()
	s.stopPastTheWait(alice, vm.UUID)

	code, got, msg := s.action(alice, vm.UUID, `{"action":"pause"}`)
	if code != http.StatusConflict || msg != `{"code":409,"message":"VM is busy: stop in progress"}` {
		t.Fatalf("pause during the stop: %d %s", code, msg)
	}
	code, got, msg = s.action(alice, vm.UUID, `{"action":"force_stop"}`)
	if code != http.StatusOK || got.Status != "Stopped" || got.Task != nil || msg != "VM force stopped" {
		t.Fatalf("force stop: %d %+v %s", code, got, msg)
	}
	if got := s.get(alice, vm.UUID); got.Status != "Stopped" || got.Task != nil {
		t.Fatalf("GET after the force stop: %+v", got)
	}
	// The socket's vm_update events: the stop's task, then the result without it.
	s.eventsUntil(vm.UUID, func(seen []vmJSON) bool {
		stop := -1
		for i, v := range seen {
			if v.Task != nil && v.Task.Action == "stop" && stop < 0 {
				stop = i
			}
		}
		last := seen[len(seen)-1]
		return stop >= 0 && last.Status == "Stopped" && last.Task == nil
	})

	// Another replica over the same database: its force stop takes over the first one's stop.
	if code, _, msg := s.action(alice, vm.UUID, `{"action":"start"}`); code != http.StatusOK {
		t.Fatalf("start again: %d %s", code, msg)
	}
	other := s.replica()
	secondStop := time.Now()
	s.stopPastTheWait(alice, vm.UUID)
	if got := other.get(alice, vm.UUID); got.Task == nil || got.Task.Action != "stop" {
		t.Fatalf("the other replica's GET during the stop: %+v", got)
	}
	code, got, msg = other.action(alice, vm.UUID, `{"action":"force_stop"}`)
	if code != http.StatusOK || got.Status != "Stopped" || got.Task != nil || msg != "VM force stopped" {
		t.Fatalf("force stop on the other replica: %d %+v %s", code, got, msg)
	}

	if code, _, msg := s.action(alice, vm.UUID, `{"action":"start"}`); code != http.StatusOK {
		t.Fatalf("start after the takeovers: %d %s", code, msg)
	}
	// Past both stops' deadlines (where a stop still going would have forced the guest off).
	time.Sleep(time.Until(secondStop.Add(s.cfg.StopTimeout + time.Second)))
	if time.Since(firstStop) < s.cfg.StopTimeout {
		t.Fatal("the first stop's deadline has not passed")
	}
	l := s.libvirt()
	dom, err := l.DomainLookupByUUID(golibvirt.UUID(uuid.MustParse(vm.UUID)))
	if err != nil {
		t.Fatal(err)
	}
	state, _, err := l.DomainGetState(dom, 0)
	if err != nil || golibvirt.DomainState(state) != golibvirt.DomainRunning {
		t.Fatalf("an overridden stop acted after all: state %d %v", state, err)
	}
	if got := s.get(alice, vm.UUID); got.Status != "Running" || got.Task != nil {
		t.Fatalf("after the deadlines: %+v", got)
	}
}

// replica is a second vm-service over the same database and libvirt, as another replica would be.
func (s *stack) replica() *stack {
	s.t.Helper()
	svc, err := service.New(s.Ctx, s.cfg, s.Pool, s.Conn, s.Log, nil)
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(svc.Close)
	return &stack{Stack: s.Stack, t: s.t, svc: svc, cfg: s.cfg}
}

// eventsUntil reads the VM's events (their data, the VM as the socket's vm_update carries it) until
// done holds for those read.
func (s *stack) eventsUntil(subject string, done func([]vmJSON) bool) {
	s.t.Helper()
	kafkatest.Read(s.t, s.Broker.ListenAddrs(), topic, func(r *kgo.Record) (vmJSON, bool) {
		var e event
		if err := json.Unmarshal(r.Value, &e); err != nil {
			s.t.Fatalf("record %s: %v", r.Value, err)
		}
		var vm vmJSON
		if e.Subject != subject || e.Type != "limen.vm.updated" || json.Unmarshal(e.Data, &vm) != nil {
			return vm, false
		}
		return vm, true
	}, func(seen []vmJSON) bool { return len(seen) > 0 && done(seen) })
}
