package app

import (
	"errors"
	"io"
	"sync"

	"limen/vm-service/internal/domain"
)

// errSessionsClosed is a console opened while the process shuts down.
var errSessionsClosed = errors.New("vm-service is shutting down")

// ConsoleSessions are the consoles open in this process. Each ends when the access token its ticket
// was issued for is revoked (UserChanged), when its machine stops (its stream ends), when its client
// goes, or at Close.
type ConsoleSessions struct {
	// Revoked judges a ticket's token; nil: nothing is ever revoked.
	Revoked Revoked

	mu     sync.Mutex
	byUser map[int64]map[*ConsoleSession]struct{}
	closed bool
}

// ConsoleSession is one open console: its bytes both ways, until Done.
type ConsoleSession struct {
	io.ReadWriteCloser
	Ticket domain.ConsoleTicket

	sessions *ConsoleSessions
	once     sync.Once
	done     chan struct{}
}

// Done is closed once the session has ended, whoever ended it.
func (s *ConsoleSession) Done() <-chan struct{} { return s.done }

// Close ends the session and its stream; calling it again does nothing.
func (s *ConsoleSession) Close() error {
	var err error
	s.once.Do(func() {
		s.sessions.forget(s)
		close(s.done)
		err = s.ReadWriteCloser.Close()
	})
	return err
}

func (r *ConsoleSessions) revoked(t domain.ConsoleTicket) bool {
	return r.Revoked != nil && r.Revoked(t.UserID, t.TokenVersion, t.SessionID)
}

// open registers a session over stream. It checks the ticket's token once registered, so a
// revocation arriving meanwhile cannot slip between the check and the registration.
func (r *ConsoleSessions) open(t domain.ConsoleTicket, stream io.ReadWriteCloser) (*ConsoleSession, error) {
	s := &ConsoleSession{ReadWriteCloser: stream, Ticket: t, sessions: r, done: make(chan struct{})}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		_ = stream.Close()
		return nil, errSessionsClosed
	}
	if r.byUser == nil {
		r.byUser = map[int64]map[*ConsoleSession]struct{}{}
	}
	if r.byUser[t.UserID] == nil {
		r.byUser[t.UserID] = map[*ConsoleSession]struct{}{}
	}
	r.byUser[t.UserID][s] = struct{}{}
	r.mu.Unlock()
	if r.revoked(t) {
		_ = s.Close()
		return nil, domain.ErrConsoleTicket
	}
	return s, nil
}

func (r *ConsoleSessions) forget(s *ConsoleSession) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.byUser[s.Ticket.UserID], s)
	if len(r.byUser[s.Ticket.UserID]) == 0 {
		delete(r.byUser, s.Ticket.UserID)
	}
}

// UserChanged ends the user's sessions whose token has been revoked; call it on every change the
// revocation list applies.
func (r *ConsoleSessions) UserChanged(userID int64) {
	for _, s := range r.of(func(id int64) bool { return id == userID }) {
		if r.revoked(s.Ticket) {
			_ = s.Close()
		}
	}
}

// Close ends every session and refuses new ones: the process is stopping.
func (r *ConsoleSessions) Close() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	for _, s := range r.of(func(int64) bool { return true }) {
		_ = s.Close()
	}
}

func (r *ConsoleSessions) of(user func(int64) bool) []*ConsoleSession {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*ConsoleSession
	for id, set := range r.byUser {
		if user(id) {
			for s := range set {
				out = append(out, s)
			}
		}
	}
	return out
}
