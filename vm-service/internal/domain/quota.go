package domain

import (
	"github.com/google/uuid"

	"limen/libs/contract"
	"limen/libs/failure"
)

// Usage is what one user's VMs hold, stopped ones included.
type Usage struct {
	VMs       int
	CPU       int
	MemoryMiB int
}

// QuotaChange is what a create, resize or restore of one VM changes in its owner's usage: the
// difference, not the VM's size. quota-service holds its growth under Key before anything is made.
type QuotaChange struct {
	// Key names this one attempt: the same key asked again counts once.
	Key       string
	OwnerID   int64
	VM        uuid.UUID
	VMs       int
	CPU       int
	MemoryMiB int
}

// Grows reports whether the change takes more of anything. Only growth needs quota-service's consent;
// a pure shrink is left to the VM event that announces it, so it works while quota-service is away.
func (c QuotaChange) Grows() bool { return c.VMs > 0 || c.CPU > 0 || c.MemoryMiB > 0 }

// ErrQuotaServiceDown is quota-service out of reach: growth is refused, never admitted unchecked.
var ErrQuotaServiceDown = failure.New(failure.Unavailable, contract.QuotaUnavailableMessage)
