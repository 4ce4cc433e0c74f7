package app

import (
	"context"
	"time"

	"limen/quota-service/internal/domain"
)

// Reserve is a peer service's request to hold a change of a user's usage for one VM before it makes
// the change.
type Reserve struct {
	Key    string
	UserID int64
	VMUUID string
	Change domain.Resources
}

// ReserveHandler admits the growth against the user's limits and holds it, atomically, for TTL.
type ReserveHandler struct {
	Reservations Reservations
	Deletions    Deletions
	TTL          time.Duration
}

// Handle answers the reservation and whether it was made now (false: the key was known and this is
// a repeat, which counts nothing again).
func (h ReserveHandler) Handle(ctx context.Context, cmd Reserve) (domain.Reservation, bool, error) {
	asked, err := domain.NewReservation(cmd.Key, cmd.UserID, cmd.VMUUID, cmd.Change)
	if err != nil {
		return domain.Reservation{}, false, err
	}
	if h.Deletions.Deleted(asked.UserID) {
		return domain.Reservation{}, false, domain.ErrUserNotFound
	}
	growth := asked.Change.Growth()
	r, created, err := h.Reservations.Reserve(ctx, asked, h.TTL, func(q domain.Quota) error {
		return q.Limits.Admit(q.Usage, growth)
	})
	if err != nil || created {
		return r, created, err
	}
	r, err = r.Repeat(asked)
	return r, false, err
}
