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
}

// WatchVMStatus opens a live status feed for the viewer, whose access token lists their VMs.
type WatchVMStatus struct {
	Viewer domain.Viewer
	Token  string
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

// StatusSession is one client's feed. Its methods are for the one goroutine serving that client.
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
	s := &StatusSession{hub: h.Hub, viewer: q.Viewer, sub: h.Hub.subscribe(q.Viewer), seqs: domain.NewSeqFilter()}
	vms, err := h.list(ctx, q)
	if err != nil {
		s.Close()
		return nil, err
	}
	s.first, s.view = StatusMessage{Kind: StatusVMList, VMs: vms}, newVMView(vms)
	return s, nil
}

// First is the viewer's list, the first message to send.
func (s *StatusSession) First() StatusMessage { return s.first }

// Events delivers the events the client may see, in publishing order.
func (s *StatusSession) Events() <-chan domain.VMEvent { return s.sub.events }

// Cut is closed when the client fell a whole queue behind and was dropped; it should be disconnected.
func (s *StatusSession) Cut() <-chan struct{} { return s.sub.cut }

// Messages turns an event into what the client is sent: nothing for a stale one, and for a deletion
// the deletion followed by the list without that VM, built from what the client was told (no
// vm-service call).
func (s *StatusSession) Messages(e domain.VMEvent) []StatusMessage {
	if !s.viewer.MaySee(e) || !s.seqs.Admit(e) {
		return nil
	}
	switch e.Kind {
	case domain.VMUpdated:
		s.view.apply(e)
		return []StatusMessage{{Kind: StatusVMUpdate, Event: e}}
	case domain.MediaChanged:
		return []StatusMessage{{Kind: StatusMediaUpdate, Event: e}}
	case domain.VMDeleted:
		s.view.apply(e)
		return []StatusMessage{{Kind: StatusVMDelete, Event: e}, {Kind: StatusVMList, VMs: s.view.list()}}
	}
	return nil
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
	return h.VMs.ListVMs(ctx, q.Token, q.Viewer.Admin)
}
