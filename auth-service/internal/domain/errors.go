package domain

import (
	"fmt"
	"time"

	"limen/libs/failure"
)

// TooManyAttempts is a throttled login.
func TooManyAttempts(retryAfter time.Duration) error {
	return failure.Retry(failure.TooManyRequests, "Too many failed login attempts, try again later", retryAfter)
}

// TooManyRegistrations is a client address that registered too often within the window.
func TooManyRegistrations(retryAfter time.Duration) error {
	return failure.Retry(failure.TooManyRequests, "Too many registrations, try again later", retryAfter)
}

// ErrBusy is every password-hashing slot taken for longer than a request may wait for one, or a
// request that ran out of time: whoever still listens may retry.
var ErrBusy = failure.Retry(failure.Unavailable, "Server busy, retry shortly", time.Second)

var (
	ErrUsernameTaken       = failure.New(failure.Conflict, "Username already exists")
	ErrInvalidCredentials  = failure.New(failure.Unauthenticated, "Invalid username or password")
	ErrPendingApproval     = failure.New(failure.Forbidden, "Account pending approval")
	ErrInvalidRefreshToken = failure.New(failure.Unauthenticated, "Invalid refresh token")
	ErrNotAuthenticated    = failure.New(failure.Unauthenticated, "Authentication required")
	ErrAdminRequired       = failure.New(failure.Forbidden, "Admin access required")
	ErrUserNotFound        = failure.New(failure.NotFound, "User not found")
	ErrLastAdmin           = failure.New(failure.Conflict, "Cannot remove the last admin")
	ErrSelfDelete          = failure.New(failure.Conflict, "Cannot delete your own account")
)

// OwnsVMs refuses deleting a user who still owns VMs, unless they are to be deleted too.
func OwnsVMs(n int) error {
	return failure.New(failure.Conflict, fmt.Sprintf("User owns %d VMs; delete them first or pass delete_vms=true to delete them with the user", n))
}

// ErrVMServiceDown: whether the user owns VMs cannot be known, so the user is not deleted.
var ErrVMServiceDown = failure.New(failure.Unavailable, "VM service unavailable")
