// Package revocation carries auth-service's user changes to every service that verifies tokens, so
// that a token loses what its user lost within a second instead of at its expiry: auth-service
// publishes each change through its outbox to contract.TopicUserEvents, every verifier follows the topic from its
// beginning into a List, and authn.Verifier consults the List on every request.
package revocation

import (
	"sync"
	"time"

	"limen/libs/authn"
	"limen/libs/contract"
)

// endedSessionMemory is how long an ended session is remembered: longer than any access token lives.
const endedSessionMemory = 48 * time.Hour

// List is the revocation state of every user, as far as the topic has been read.
type List struct {
	mu          sync.RWMutex
	minVersion  map[int64]int64
	deleted     map[int64]bool
	ended       map[string]time.Time
	subscribers []func(userID int64)
}

// NewList is an empty list: nothing is revoked.
func NewList() *List {
	return &List{minVersion: map[int64]int64{}, deleted: map[int64]bool{}, ended: map[string]time.Time{}}
}

// Revoked implements authn.Revocations.
func (l *List) Revoked(c *authn.Claims) bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.deleted[c.UserID] || c.Version < l.minVersion[c.UserID] {
		return true
	}
	_, ended := l.ended[c.SessionID]
	return c.SessionID != "" && ended
}

// Deleted reports whether the user was deleted.
func (l *List) Deleted(userID int64) bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.deleted[userID]
}

// Subscribe calls fn, outside the list's lock, after every change that may revoke a user's tokens
// (to close that user's open sockets, say).
func (l *List) Subscribe(fn func(userID int64)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.subscribers = append(l.subscribers, fn)
}

// Apply records one event. Versions only rise, so an event read twice or late changes nothing.
func (l *List) Apply(eventType string, c contract.UserChange, now time.Time) {
	l.mu.Lock()
	switch eventType {
	case contract.TypeUserChanged:
		l.minVersion[c.UserID] = max(l.minVersion[c.UserID], c.TokenVersion)
	case contract.TypeUserDeleted:
		l.deleted[c.UserID] = true
	case contract.TypeSessionEnded:
		l.ended[c.SessionID] = now
		for id, at := range l.ended {
			if now.Sub(at) > endedSessionMemory {
				delete(l.ended, id)
			}
		}
	default:
		l.mu.Unlock()
		return
	}
	subscribers := l.subscribers
	l.mu.Unlock()
	for _, fn := range subscribers {
		fn(c.UserID)
	}
}
