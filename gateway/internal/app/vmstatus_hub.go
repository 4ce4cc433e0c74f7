package app

import (
	"sync"

	"limen/gateway/internal/domain"
)

// DefaultSendQueue is how many events a client may fall behind before it is cut off: a second of
// events at 1,000 a second for a client that sees everyone's VMs, which a browser's pause or a lost
// packet must not cost its socket, and 8 KiB of queue at most (a queue holds pointers to events
// every client shares). A client that stops reading is also cut once a write to it has waited for the
// write timeout.
const DefaultSendQueue = 1024

// VMStatusHub fans VM events out to the connected clients allowed to see them. Publishing never
// waits for a client: each has a bounded queue, and one whose queue is full is cut off, so a slow
// client costs the others nothing. Clients are kept by the owner whose VMs they see (and apart,
// those that see everyone's), so an event visits only the clients it is for; and it is handed to
// them as one value, so that what is made of it for the wire is made once (SharedMessage).
type VMStatusHub struct {
	queueSize int

	mu      sync.Mutex
	byOwner map[int64]map[*subscription]struct{}
	// everyone's clients see every event (domain.Viewer.All).
	everyone map[*subscription]struct{}
	clients  int
}

// subscription is one client's place in the hub: the events queued for it until its session takes
// them. An idle client holds no queue.
type subscription struct {
	viewer domain.Viewer
	// wake tells the client's session that there is something to take; it must not block.
	wake func()

	mu    sync.Mutex
	queue []*published
	// spare is the queue's other buffer, which the session hands back once it has taken one.
	spare []*published
	// cut: the hub dropped the client for falling a whole queue behind.
	cut bool
}

// published is an event as the hub hands it to every client that may see it.
type published struct {
	event domain.VMEvent
	// message is the event's message (the deletion, the update or the media change), alike for every
	// client that is sent it.
	message SharedMessage
}

// NewVMStatusHub gives each client a queue of queueSize events (0: DefaultSendQueue).
func NewVMStatusHub(queueSize int) *VMStatusHub {
	if queueSize <= 0 {
		queueSize = DefaultSendQueue
	}
	return &VMStatusHub{queueSize: queueSize, byOwner: map[int64]map[*subscription]struct{}{}, everyone: map[*subscription]struct{}{}}
}

// Publish hands e to every client that may see it. Events of one VM arrive from one partition reader
// in order, and the lock keeps that order into each queue.
func (h *VMStatusHub) Publish(e domain.VMEvent) {
	p := &published{event: e}
	h.mu.Lock()
	defer h.mu.Unlock()
	if e.OwnerID > 0 {
		for s := range h.byOwner[e.OwnerID] {
			h.push(s, p)
		}
	}
	for s := range h.everyone {
		h.push(s, p)
	}
}

// push queues p for s, or cuts s off when its queue is full. Called with h.mu held.
func (h *VMStatusHub) push(s *subscription, p *published) {
	s.mu.Lock()
	if len(s.queue) >= h.queueSize {
		s.cut = true
		s.mu.Unlock()
		h.remove(s)
		s.wake()
		return
	}
	s.queue = append(s.queue, p)
	first := len(s.queue) == 1
	s.mu.Unlock()
	if first {
		s.wake()
	}
}

// Clients is the number of subscribed clients.
func (h *VMStatusHub) Clients() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.clients
}

func (h *VMStatusHub) subscribe(v domain.Viewer, wake func()) *subscription {
	s := &subscription{viewer: v, wake: wake}
	h.mu.Lock()
	defer h.mu.Unlock()
	set := h.everyone
	if !v.All {
		if set = h.byOwner[v.UserID]; set == nil {
			set = map[*subscription]struct{}{}
			h.byOwner[v.UserID] = set
		}
	}
	set[s] = struct{}{}
	h.clients++
	return s
}

func (h *VMStatusHub) unsubscribe(s *subscription) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.remove(s)
}

// remove forgets s, if it is still there. Called with h.mu held.
func (h *VMStatusHub) remove(s *subscription) {
	set := h.everyone
	if !s.viewer.All {
		set = h.byOwner[s.viewer.UserID]
	}
	if _, ok := set[s]; !ok {
		return
	}
	delete(set, s)
	h.clients--
	if !s.viewer.All && len(set) == 0 {
		delete(h.byOwner, s.viewer.UserID)
	}
}

// take returns what was queued for s since the last call, and whether s was cut off; the slice is
// s's until it is handed back with release.
func (s *subscription) take() ([]*published, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.queue
	s.queue, s.spare = s.spare[:0], nil
	return q, s.cut
}

// release hands back a slice take returned, cleared so that it keeps no event alive.
func (s *subscription) release(q []*published) {
	clear(q)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.spare == nil && cap(q) > 0 {
		s.spare = q[:0]
	}
}

// SharedMessage is a message that every client sent it gets alike: what the port makes of it for
// the wire is made once, by the first client's session that asks, and shared.
type SharedMessage struct {
	once    sync.Once
	encoded any
}

// Encoded is encode(m) for the first caller, and what it returned for every later one.
func (s *SharedMessage) Encoded(m StatusMessage, encode func(StatusMessage) any) any {
	s.once.Do(func() { s.encoded = encode(m) })
	return s.encoded
}
