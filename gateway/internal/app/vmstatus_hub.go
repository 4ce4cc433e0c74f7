package app

import (
	"sync"

	"limen/gateway/internal/domain"
)

// DefaultSendQueue is how many events a client may fall behind before it is cut off.
const DefaultSendQueue = 256

// VMStatusHub fans VM events out to the connected clients allowed to see them. Publishing never
// waits for a client: each has a bounded queue, and one whose queue is full is cut off, so a slow
// client costs the others nothing.
type VMStatusHub struct {
	queueSize int

	mu   sync.Mutex
	subs map[*subscription]struct{}
}

// subscription is one client's place in the hub.
type subscription struct {
	viewer domain.Viewer
	events chan domain.VMEvent
	// cut is closed when the hub drops the client for falling behind; events is never closed, so a
	// publisher racing with an unsubscribe cannot send on a closed channel.
	cut chan struct{}
}

// NewVMStatusHub gives each client a queue of queueSize events (0: DefaultSendQueue).
func NewVMStatusHub(queueSize int) *VMStatusHub {
	if queueSize <= 0 {
		queueSize = DefaultSendQueue
	}
	return &VMStatusHub{queueSize: queueSize, subs: map[*subscription]struct{}{}}
}

// Publish hands e to every client that may see it. Events of one VM arrive from one partition reader
// in order, and the lock keeps that order into each queue.
func (h *VMStatusHub) Publish(e domain.VMEvent) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		if !s.viewer.MaySee(e) {
			continue
		}
		select {
		case s.events <- e:
		default:
			delete(h.subs, s)
			close(s.cut)
		}
	}
}

// Clients is the number of subscribed clients.
func (h *VMStatusHub) Clients() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}

func (h *VMStatusHub) subscribe(v domain.Viewer) *subscription {
	s := &subscription{viewer: v, events: make(chan domain.VMEvent, h.queueSize), cut: make(chan struct{})}
	h.mu.Lock()
	h.subs[s] = struct{}{}
	h.mu.Unlock()
	return s
}

func (h *VMStatusHub) unsubscribe(s *subscription) {
	h.mu.Lock()
	delete(h.subs, s)
	h.mu.Unlock()
}
