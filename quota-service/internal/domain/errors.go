package domain

import "limen/libs/failure"

// The errors callers read; docs/openapi.yaml lists them per route. Quota refusals are built by
// Resources.Admit.
var (
	ErrAdminRequired        = failure.New(failure.Forbidden, "Admin access required")
	ErrUserNotFound         = failure.New(failure.NotFound, "User not found")
	ErrNoLimitGiven         = failure.New(failure.Invalid, "At least one of max_vms, max_cpu, max_memory is required")
	ErrReservationNotFound  = failure.New(failure.NotFound, "Reservation not found")
	ErrKeyReused            = failure.New(failure.Conflict, "Reservation key already used for another change")
	ErrReservationReleased  = failure.New(failure.Conflict, "Reservation already released")
	ErrReservationExpired   = failure.New(failure.Conflict, "Reservation expired")
	ErrReservationCommitted = failure.New(failure.Conflict, "Reservation already committed")
	ErrAuthServiceDown      = failure.New(failure.Unavailable, "Auth service unavailable, try again shortly")
)
