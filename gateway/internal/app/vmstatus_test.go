package app_test

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"limen/gateway/internal/app"
	"limen/gateway/internal/domain"
)

const (
	vmOfA = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"
	vmOfB = "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb"
)

var (
	userA = domain.NewViewer(7, false, false)
	// admin asks for everyone's VMs; adminOwn does not.
	admin    = domain.NewViewer(1, true, true)
	adminOwn = domain.NewViewer(1, true, false)
)

func event(kind domain.VMEventKind, vm string, owner, seq int64) domain.VMEvent {
	return domain.VMEvent{Kind: kind, VMUUID: vm, OwnerID: owner, Seq: seq, VM: json.RawMessage(`{"uuid":"` + vm + `"}`)}
}

// lister answers with a list naming who asked (or with list, when set); hook runs during each fetch.
type lister struct {
	mu    sync.Mutex
	calls []string
	err   error
	hook  func()
	list  string
}

func (l *lister) ListVMs(_ context.Context, token string, all bool) (json.RawMessage, error) {
	l.mu.Lock()
	l.calls = append(l.calls, token)
	hook, err := l.hook, l.err
	l.mu.Unlock()
	if hook != nil {
		hook()
	}
	if err != nil {
		return nil, err
	}
	if l.list != "" {
		return json.RawMessage(l.list), nil
	}
	if all {
		return json.RawMessage(`["all of ` + token + `"]`), nil
	}
	return json.RawMessage(`["own of ` + token + `"]`), nil
}

// session is a feed as a socket's writer serves it: woken when there is something to take.
type session struct {
	*app.StatusSession
	woken   chan struct{}
	pending []app.StatusMessage
	cut     bool
}

func open(t *testing.T, f app.WatchVMStatusHandler, v domain.Viewer, token string) (*session, app.StatusMessage) {
	t.Helper()
	woken := make(chan struct{}, 1)
	wake := func() {
		select {
		case woken <- struct{}{}:
		default:
		}
	}
	s, err := f.Handle(context.Background(), app.WatchVMStatus{Viewer: v, Token: token, Wake: wake})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return &session{StatusSession: s, woken: woken}, s.First()
}

// take collects what the session has, waiting up to wait for a wake-up when nothing is pending.
func (s *session) take(wait time.Duration) {
	if len(s.pending) == 0 {
		select {
		case <-s.woken:
		case <-time.After(wait):
		}
	}
	msgs, cut := s.Take(nil)
	s.pending, s.cut = append(s.pending, msgs...), s.cut || cut
}

// next is the next message's event.
func next(t *testing.T, s *session) domain.VMEvent {
	t.Helper()
	s.take(time.Second)
	if len(s.pending) == 0 {
		t.Fatal("no event")
	}
	m := s.pending[0]
	s.pending = s.pending[1:]
	return m.Event
}

func TestFeed_FirstMessageIsTheViewersList(t *testing.T) {
	l := &lister{}
	f := app.WatchVMStatusHandler{Hub: app.NewVMStatusHub(4), VMs: l}
	_, first := open(t, f, userA, "token-a")
	_, adminFirst := open(t, f, admin, "token-admin")
	if first.Kind != app.StatusVMList || string(first.VMs) != `["own of token-a"]` {
		t.Fatalf("user's list: %+v", first)
	}
	if string(adminFirst.VMs) != `["all of token-admin"]` {
		t.Fatalf("admin's list: %s", adminFirst.VMs)
	}
}

func TestFeed_EventDuringListFetchIsNotLost(t *testing.T) {
	hub := app.NewVMStatusHub(4)
	l := &lister{}
	l.hook = func() { hub.Publish(event(domain.VMUpdated, vmOfA, 7, 1)) }
	s, _ := open(t, app.WatchVMStatusHandler{Hub: hub, VMs: l}, userA, "t")
	if e := next(t, s); e.Seq != 1 {
		t.Fatalf("got %+v", e)
	}
}

func TestFeed_UserGetsOwnEventsOnly_AdminGetsAll(t *testing.T) {
	hub := app.NewVMStatusHub(4)
	f := app.WatchVMStatusHandler{Hub: hub, VMs: &lister{}}
	user, _ := open(t, f, userA, "a")
	adm, _ := open(t, f, admin, "admin")
	hub.Publish(event(domain.VMUpdated, vmOfB, 8, 1))
	hub.Publish(event(domain.VMUpdated, vmOfA, 7, 1))
	if e := next(t, user); e.VMUUID != vmOfA {
		t.Fatalf("user got %s", e.VMUUID)
	}
	if a, b := next(t, adm), next(t, adm); a.VMUUID != vmOfB || b.VMUUID != vmOfA {
		t.Fatalf("admin got %s, %s", a.VMUUID, b.VMUUID)
	}
}

func TestFeed_AdminNotAskingForAll_ListAndEventsAreTheirOwn(t *testing.T) {
	hub := app.NewVMStatusHub(4)
	f := app.WatchVMStatusHandler{Hub: hub, VMs: &lister{}}
	s, first := open(t, f, adminOwn, "admin")
	if string(first.VMs) != `["own of admin"]` {
		t.Fatalf("list: %s", first.VMs)
	}
	hub.Publish(event(domain.VMUpdated, vmOfB, 8, 1))
	hub.Publish(event(domain.VMUpdated, vmOfA, 1, 1))
	if e := next(t, s); e.VMUUID != vmOfA || len(s.pending) != 0 {
		t.Fatalf("got %+v, then %+v", e, s.pending)
	}
	if s.take(0); len(s.pending) != 0 {
		t.Fatalf("another's event: %+v", s.pending)
	}
}

func TestFeed_StaleEventsProduceNoMessage(t *testing.T) {
	s, _ := open(t, app.WatchVMStatusHandler{Hub: app.NewVMStatusHub(4), VMs: &lister{}}, userA, "a")
	var sent []int64
	for _, seq := range []int64{5, 5, 3, 6} {
		for _, m := range s.Messages(event(domain.VMUpdated, vmOfA, 7, seq)) {
			if m.Kind != app.StatusVMUpdate {
				t.Fatalf("kind %v", m.Kind)
			}
			sent = append(sent, m.Event.Seq)
		}
	}
	if len(sent) != 2 || sent[0] != 5 || sent[1] != 6 {
		t.Fatalf("sent %v", sent)
	}
}

func vmBody(id int64, uuid, status string) string {
	return `{"id":` + strconv.FormatInt(id, 10) + `,"uuid":"` + uuid + `","name":"vm-` + strconv.FormatInt(id, 10) +
		`","status":"` + status + `","owner_id":7}`
}

func update(vm string, id, seq int64, status string) domain.VMEvent {
	return domain.VMEvent{Kind: domain.VMUpdated, VMUUID: vm, VMID: id, OwnerID: 7, Seq: seq, VM: json.RawMessage(vmBody(id, vm, status))}
}

// After a deletion the client gets the list it was opened with, with every update and deletion it was
// sent since applied, in vm-service's order (by id), without vm-service being asked again.
func TestFeed_DeletionIsFollowedByTheListItHolds_NoFetch(t *testing.T) {
	const vm1, vm2, vm3, vm4 = "00000000-0000-4000-8000-000000000001", "00000000-0000-4000-8000-000000000002",
		"00000000-0000-4000-8000-000000000003", "00000000-0000-4000-8000-000000000004"
	l := &lister{list: "[" + vmBody(1, vm1, "Stopped") + "," + vmBody(3, vm3, "Running") + "]"}
	s, first := open(t, app.WatchVMStatusHandler{Hub: app.NewVMStatusHub(4), VMs: l}, userA, "a")
	if string(first.VMs) != l.list {
		t.Fatalf("first list %s", first.VMs)
	}
	s.Messages(update(vm3, 3, 1, "Paused"))  // changed
	s.Messages(update(vm2, 2, 1, "Stopped")) // created: goes between 1 and 3
	s.Messages(update(vm4, 4, 1, "Stopped")) // created: goes last
	s.Messages(update(vm3, 3, 1, "Error"))   // stale: not sent, not applied
	msgs := s.Messages(domain.VMEvent{Kind: domain.VMDeleted, VMUUID: vm1, VMID: 1, OwnerID: 7, Seq: 9})
	if len(msgs) != 2 || msgs[0].Kind != app.StatusVMDelete || msgs[0].Event.VMUUID != vm1 || msgs[1].Kind != app.StatusVMList {
		t.Fatalf("%+v", msgs)
	}
	want := "[" + vmBody(2, vm2, "Stopped") + "," + vmBody(3, vm3, "Paused") + "," + vmBody(4, vm4, "Stopped") + "]"
	if string(msgs[1].VMs) != want {
		t.Fatalf("list after the deletion\n got %s\nwant %s", msgs[1].VMs, want)
	}
	// A deletion of a VM the list never had leaves it as it is; a repeated one is not sent again.
	msgs = s.Messages(domain.VMEvent{Kind: domain.VMDeleted, VMUUID: vmOfB, OwnerID: 7, Seq: 1})
	if len(msgs) != 2 || string(msgs[1].VMs) != want {
		t.Fatalf("%+v", msgs)
	}
	want = "[" + vmBody(3, vm3, "Paused") + "," + vmBody(4, vm4, "Stopped") + "]"
	if msgs := s.Messages(domain.VMEvent{Kind: domain.VMDeleted, VMUUID: vm2, OwnerID: 7, Seq: 2}); len(msgs) != 2 || string(msgs[1].VMs) != want {
		t.Fatalf("%+v", msgs)
	}
	if msgs := s.Messages(domain.VMEvent{Kind: domain.VMDeleted, VMUUID: vm2, OwnerID: 7, Seq: 2}); msgs != nil {
		t.Fatalf("repeated deletion: %+v", msgs)
	}
	if len(l.calls) != 1 {
		t.Fatalf("vm-service asked %d times, want once (the first list)", len(l.calls))
	}
}

// A deletion's list needs no vm-service: it goes out even while vm-service is down.
func TestFeed_DeletionListDoesNotNeedVMService(t *testing.T) {
	l := &lister{list: "[" + vmBody(1, vmOfA, "Stopped") + "]"}
	s, _ := open(t, app.WatchVMStatusHandler{Hub: app.NewVMStatusHub(4), VMs: l}, userA, "a")
	l.mu.Lock()
	l.err = errors.New("vm-service down")
	l.mu.Unlock()
	msgs := s.Messages(domain.VMEvent{Kind: domain.VMDeleted, VMUUID: vmOfA, OwnerID: 7, Seq: 2})
	if len(msgs) != 2 || msgs[1].Kind != app.StatusVMList || string(msgs[1].VMs) != "[]" {
		t.Fatalf("%+v", msgs)
	}
}

func TestFeed_MediaChangeIsAMediaUpdate(t *testing.T) {
	s, _ := open(t, app.WatchVMStatusHandler{Hub: app.NewVMStatusHub(4), VMs: &lister{}}, userA, "a")
	e := domain.VMEvent{Kind: domain.MediaChanged, VMUUID: vmOfA, OwnerID: 7, Seq: 1, Media: domain.Media{Path: "/isos/x.iso", Attached: true}}
	msgs := s.Messages(e)
	if len(msgs) != 1 || msgs[0].Kind != app.StatusMediaUpdate || msgs[0].Event.Media.Path != "/isos/x.iso" {
		t.Fatalf("%+v", msgs)
	}
}

func TestFeed_ListFailureOpensNothing(t *testing.T) {
	hub := app.NewVMStatusHub(4)
	if _, err := (app.WatchVMStatusHandler{Hub: hub, VMs: &lister{err: errors.New("down")}}).Handle(context.Background(), app.WatchVMStatus{Viewer: userA, Token: "a"}); err == nil {
		t.Fatal("opened without a list")
	}
	if _, err := (app.WatchVMStatusHandler{Hub: hub}).Handle(context.Background(), app.WatchVMStatus{Viewer: userA, Token: "a"}); !errors.Is(err, app.ErrVMServiceAbsent) {
		t.Fatalf("no vm-service: %v", err)
	}
	if hub.Clients() != 0 {
		t.Fatalf("%d clients left subscribed", hub.Clients())
	}
}

func TestHub_SlowClientIsCutWithoutDelayingOthers(t *testing.T) {
	hub := app.NewVMStatusHub(2)
	f := app.WatchVMStatusHandler{Hub: hub, VMs: &lister{}}
	slow, _ := open(t, f, admin, "slow")
	fast, _ := open(t, f, admin, "fast")

	done := make(chan struct{})
	go func() {
		defer close(done)
		for seq := int64(1); seq <= 50; seq++ {
			hub.Publish(event(domain.VMUpdated, vmOfA, 7, seq))
			if e := next(t, fast); e.Seq != seq {
				t.Errorf("fast client got %d, want %d", e.Seq, seq)
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("publishing waited for the slow client")
	}
	if slow.take(0); !slow.cut {
		t.Fatal("slow client was not cut")
	}
	if fast.take(0); fast.cut {
		t.Fatal("fast client was cut")
	}
	if hub.Clients() != 1 {
		t.Fatalf("clients: %d", hub.Clients())
	}
	slow.Close() // idempotent after a cut
}
