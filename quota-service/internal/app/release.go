package app

import (
	"context"

	"limen/quota-service/internal/domain"
)

// Release says that the change reserved under Key was not made.
type Release struct {
	Key string
}

// ReleaseHandler ends the reservation and frees its hold.
type ReleaseHandler struct {
	Reservations Reservations
}

func (h ReleaseHandler) Handle(ctx context.Context, cmd Release) (domain.Reservation, error) {
	return h.Reservations.Settle(ctx, cmd.Key, domain.Reservation.Release, nil)
}
