package app

import (
	"context"
	"errors"
	"time"

	"limen/quota-service/internal/domain"
)

// Reconcile asks for one round of the periodic check.
type Reconcile struct{}

// Reconciliation is what one round changed.
type Reconciliation struct {
	// Expired is how many reservations were neither committed nor released in time.
	Expired int
	// Drifts are the users whose usage disagreed with their VMs and pending reservations.
	Drifts []domain.Drift
	// Forgotten are deleted users whose quota was still kept (their deletion's removal failed).
	Forgotten []int64
}

// ReconcileHandler frees the holds of reservations whose caller never said how they ended, repairs
// usage that disagrees with the VMs the events report, removes what is left of deleted users, and
// forgets ended reservations and gone VMs after Retention (a key used again after that counts anew).
type ReconcileHandler struct {
	Upkeep    Upkeep
	Deletions Deletions
	Retention time.Duration
	Now       Clock
}

func (h ReconcileHandler) Handle(ctx context.Context, _ Reconcile) (Reconciliation, error) {
	var out Reconciliation
	var errs []error
	expired, err := h.Upkeep.ExpireDue(ctx)
	out.Expired = expired
	errs = append(errs, err)
	drifts, err := h.Upkeep.RepairDrift(ctx)
	out.Drifts = drifts
	errs = append(errs, err)
	users, err := h.Upkeep.UserIDs(ctx)
	errs = append(errs, err)
	for _, id := range users {
		if !h.Deletions.Deleted(id) {
			continue
		}
		if err := h.Upkeep.ForgetUser(ctx, id); err != nil {
			errs = append(errs, err)
			continue
		}
		out.Forgotten = append(out.Forgotten, id)
	}
	errs = append(errs, h.Upkeep.Purge(ctx, h.Now().Add(-h.Retention)))
	return out, errors.Join(errs...)
}
