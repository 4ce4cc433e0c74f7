// Package app holds quota-service's use cases and the ports they need.
package app

import (
	"context"
	"time"

	"github.com/google/uuid"

	"limen/quota-service/internal/domain"
)

// Quotas are the users' limits and usage. A user without a quota yet has the default limits and no
// usage; reading or changing it makes the quota.
type Quotas interface {
	// Quota is the user's quota, made with the default limits when there is none yet.
	Quota(ctx context.Context, userID int64) (domain.Quota, error)
	// Find is the user's quota; false when there is none yet.
	Find(ctx context.Context, userID int64) (domain.Quota, bool, error)
	// List is one page of quotas by user id, and how many there are in all.
	List(ctx context.Context, limit, offset int) ([]domain.Quota, int, error)
	// SetLimits sets the limits change names, in one statement, making the quota first if needed.
	SetLimits(ctx context.Context, userID int64, change domain.LimitsChange) (domain.Quota, error)
}

// Reservations admit changes of usage and settle them. Every change of one user's usage (a
// reservation's admission or end, a VM's new size or deletion) happens under one lock per user, so
// usage, held growth and the VMs counted never disagree, and no two admissions see the same usage.
type Reservations interface {
	// Reserve admits r and holds its growth in one atomic step, unless r's key is known: then it
	// returns the reservation of that key, and false. A refusal is explained by admit, called with
	// the quota as it stands after the attempt; when admit finds that r fits after all (usage fell
	// meanwhile), the attempt is made again. The reservation expires after ttl.
	Reserve(ctx context.Context, r domain.Reservation, ttl time.Duration, admit func(domain.Quota) error) (domain.Reservation, bool, error)
	// Settle ends the reservation of key as end decides from the state it is in
	// (domain.ErrReservationNotFound when there is none): its hold is freed once it is no longer
	// pending, and, once it is committed, vm (when not nil: the VM's size and version as the change
	// left them; its uuid and owner are the reservation's) is recorded as ApplyVM would.
	Settle(ctx context.Context, key string, end func(domain.Reservation) (domain.Reservation, error), vm *domain.VMState) (domain.Reservation, error)
}

// VMs are the VMs whose usage counts, as their events and commits report them.
type VMs interface {
	// ApplyVM records vm's state unless a newer one is recorded or the VM is gone, and settles as
	// committed the pending reservations that create it: it exists.
	ApplyVM(ctx context.Context, vm domain.VMState) error
	// RemoveVM records that the VM is gone (VM uuids are never reused, so no later report brings it
	// back): its usage and its pending reservations are freed.
	RemoveVM(ctx context.Context, vm uuid.UUID, owner int64) error
}

// Upkeep is what the periodic reconciliation does to the store.
type Upkeep interface {
	// ExpireDue expires every pending reservation past its time, freeing its hold; how many.
	ExpireDue(ctx context.Context) (int, error)
	// RepairDrift sets the usage of every quota that disagrees with its VMs and pending reservations,
	// and says which.
	RepairDrift(ctx context.Context) ([]domain.Drift, error)
	// UserIDs lists the users with a quota.
	UserIDs(ctx context.Context) ([]int64, error)
	// ForgetUser removes the user's quota, reservations and VMs.
	ForgetUser(ctx context.Context, userID int64) error
	// Purge removes ended reservations and gone VMs settled before.
	Purge(ctx context.Context, before time.Time) error
}

// Users is auth-service, asked whether a user exists.
type Users interface {
	Exists(ctx context.Context, userID int64) (bool, error)
}

// Deletions say which users auth-service has deleted, as far as its events have been read.
type Deletions interface {
	Deleted(userID int64) bool
}

// Clock is the time source, fixed in tests.
type Clock func() time.Time

// Caller is who asks.
type Caller struct {
	UserID int64
	Admin  bool
}
