package domain

import (
	"errors"
	"fmt"
	"time"
)

// Kind classifies a domain error; the HTTP port maps each kind to one status code.
type Kind int

const (
	KindInvalid Kind = iota + 1
	KindUnauthenticated
	KindForbidden
	KindNotFound
	KindConflict
	KindTooManyRequests
	KindUnavailable
)

// Error is a rule the request broke, with the message the caller sees.
type Error struct {
	Kind    Kind
	Message string
	// RetryAfter says when a throttled caller may try again.
	RetryAfter time.Duration
}

func (e *Error) Error() string { return e.Message }

// Invalid is bad input.
func Invalid(message string) error { return &Error{Kind: KindInvalid, Message: message} }

// TooManyAttempts is a throttled login.
func TooManyAttempts(retryAfter time.Duration) error {
	return &Error{Kind: KindTooManyRequests, Message: "Too many failed login attempts, try again later", RetryAfter: retryAfter}
}

// TooManyRegistrations is a client address that registered too often within the window.
func TooManyRegistrations(retryAfter time.Duration) error {
	return &Error{Kind: KindTooManyRequests, Message: "Too many registrations, try again later", RetryAfter: retryAfter}
}

// ErrBusy is every password-hashing slot taken for longer than a request may wait for one.
var ErrBusy = &Error{Kind: KindUnavailable, Message: "Server busy, retry shortly", RetryAfter: time.Second}

var (
	ErrUsernameTaken       = &Error{Kind: KindConflict, Message: "Username already exists"}
	ErrInvalidCredentials  = &Error{Kind: KindUnauthenticated, Message: "Invalid username or password"}
	ErrPendingApproval     = &Error{Kind: KindForbidden, Message: "Account pending approval"}
	ErrInvalidRefreshToken = &Error{Kind: KindUnauthenticated, Message: "Invalid refresh token"}
	ErrNotAuthenticated    = &Error{Kind: KindUnauthenticated, Message: "Authentication required"}
	ErrAdminRequired       = &Error{Kind: KindForbidden, Message: "Admin access required"}
	ErrUserNotFound        = &Error{Kind: KindNotFound, Message: "User not found"}
	ErrLastAdmin           = &Error{Kind: KindConflict, Message: "Cannot remove the last admin"}
	ErrSelfDelete          = &Error{Kind: KindConflict, Message: "Cannot delete your own account"}
)

// OwnsVMs refuses deleting a user who still owns VMs, unless they are to be deleted too.
func OwnsVMs(n int) error {
	return &Error{Kind: KindConflict, Message: fmt.Sprintf("User owns %d VMs; delete them first or pass delete_vms=true to delete them with the user", n)}
}

// ErrVMServiceDown: whether the user owns VMs cannot be known, so the user is not deleted.
var ErrVMServiceDown = &Error{Kind: KindUnavailable, Message: "VM service unavailable"}

// KindOf is the kind of a domain error, or 0 for any other error.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return 0
}
