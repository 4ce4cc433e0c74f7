package app

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"limen/gateway/internal/domain"
)

// VMLister fetches the VM list exactly as GET /api/vms answers the user whose access token it
// forwards; all asks for everyone's VMs (admins only).
type VMLister interface {
	ListVMs(ctx context.Context, token string, all bool) (json.RawMessage, error)
}

// ErrVMServiceAbsent means no vm-service is deployed, so there is no list to start a feed with.
var ErrVMServiceAbsent = errors.New("vm-service not deployed")

// StatusMessageKind is what a message to a live status client says.
type StatusMessageKind int

const (
	// StatusVMList carries the whole list the client may see.
	StatusVMList StatusMessageKind = iota + 1
	StatusVMUpdate
	StatusVMDelete
	StatusMediaUpdate
)

// StatusMessage is one message for a client: VMs for a list, Event for the others.
type StatusMessage struct {
	Kind  StatusMessageKind
	VMs   json.RawMessage
	Event domain.VMEvent
	// Shared is set on a message of an event that every client sent it gets alike (all but lists):
	// its encoding is made once for them all.
	Shared *SharedMessage
}

// WatchVMStatus opens a live status feed for the viewer, whose access token lists their VMs.
type WatchVMStatus struct {
	Viewer domain.Viewer
	Token  string
	// Wake is called whenever the feed has something for Take (events, or its client being cut
	// off), from the publisher's goroutine: it must not block. Nil: nobody is told.
	Wake func()
}

// WatchVMStatusHandler is the live status use case: a client gets the VM list, then every later
// event it may see, in order, never older than what it was already sent, and after each deletion the
// list again (clients that know only updates and lists still drop the deleted VM). vm-service is
// asked once per connection, for the first list; the later ones are built from that list and the
// events the client was sent since (see vmView), so a deletion seen by many sockets costs vm-service
// nothing.
type WatchVMStatusHandler struct {
	Hub *VMStatusHub
	// VMs is nil when vm-service is not deployed.
	VMs VMLister
	// ListTimeout bounds one list fetch (0: 10 s).
	ListTimeout time.Duration
}

// StatusSession is one client's feed. Its methods are for one goroutine at a time: the one writing
// to that client.
type StatusSession struct {
	hub    *VMStatusHub
	viewer domain.Viewer
	sub    *subscription
	seqs   *domain.SeqFilter
	// first is the viewer's list as vm-service answered it: the first message to send.
	first StatusMessage
	// view is the list as the client knows it, for the list that follows a deletion.
	view *vmView
}

// Handle subscribes the viewer and fetches their list, which is the session's first message. It
// subscribes first, so an event that happens while the list is being fetched is queued rather than
// lost; such an event may repeat what the list already shows, which is harmless.
func (h WatchVMStatusHandler) Handle(ctx context.Context, q WatchVMStatus) (*StatusSession, error) {
	if h.VMs == nil {
		return nil, ErrVMServiceAbsent
	}
	wake := q.Wake
	if wake == nil {
		wake = func() {}
	}
	s := &StatusSession{hub: h.Hub, viewer: q.Viewer, sub: h.Hub.subscribe(q.Viewer, wake), seqs: domain.NewSeqFilter()}
	vms, err := h.list(ctx, q)
	if err != nil {
		s.Close()
		return nil, err
	}
	s.first, s.view = StatusMessage{Kind: StatusVMList, VMs: vms}, newVMView(vms)
	return s, nil
}

// First is the viewer's list, the first message to send. The session lets go of it then: later
// lists are built from the view.
func (s *StatusSession) First() StatusMessage {
	first := s.first
	s.first = StatusMessage{}
	return first
}

// Take appends to dst the messages for the events that arrived since the last call, in publishing
// order (see Messages), unless the client fell a whole queue behind and was dropped: then cut is
// true, and the client should be disconnected.
func (s *StatusSession) Take(dst []StatusMessage) (msgs []StatusMessage, cut bool) {
	q, cut := s.sub.take()
	if !cut {
		for _, p := range q {
			dst = s.messages(dst, p.event, &p.message)
		}
	}
	s.sub.release(q)
	return dst, cut
}

// Messages turns an event into what the client is sent: nothing for a stale one, and for a deletion
// the deletion followed by the list without that VM, built from what the client was told (no
// vm-service call).
func (s *StatusSession) Messages(e domain.VMEvent) []StatusMessage { return s.messages(nil, e, nil) }

// messages appends e's messages to dst; shared is the one e's message shares with every client.
func (s *StatusSession) messages(dst []StatusMessage, e domain.VMEvent, shared *SharedMessage) []StatusMessage {
	if !s.viewer.MaySee(e) || !s.seqs.Admit(e) {
		return dst
	}
	switch e.Kind {
	case domain.VMUpdated:
		s.view.apply(e)
		return append(dst, StatusMessage{Kind: StatusVMUpdate, Event: e, Shared: shared})
	case domain.MediaChanged:
		return append(dst, StatusMessage{Kind: StatusMediaUpdate, Event: e, Shared: shared})
	case domain.VMDeleted:
		s.view.apply(e)
		return append(dst, StatusMessage{Kind: StatusVMDelete, Event: e, Shared: shared}, StatusMessage{Kind: StatusVMList, VMs: s.view.list()})
	}
	return dst
}

// Close leaves the hub.
func (s *StatusSession) Close() { s.hub.unsubscribe(s.sub) }

func (h WatchVMStatusHandler) list(ctx context.Context, q WatchVMStatus) (json.RawMessage, error) {
	timeout := h.ListTimeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return h.VMs.ListVMs(ctx, q.Token, q.Viewer.All)
}
