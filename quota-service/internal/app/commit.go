package app

import (
	"context"
	"log/slog"

	"github.com/google/uuid"

	"limen/quota-service/internal/domain"
)

// Commit says that the change reserved under Key was made: the VM is now CPU and MemoryMiB, at
// Version.
type Commit struct {
	Key       string
	CPU       int
	MemoryMiB int
	Version   int64
}

// CommitHandler ends the reservation's hold and counts the VM as it now is, in one step.
type CommitHandler struct {
	Reservations Reservations
	Log          *slog.Logger
}

func (h CommitHandler) Handle(ctx context.Context, cmd Commit) (domain.Reservation, error) {
	size, err := domain.NewVMState(uuid.Nil, 0, cmd.CPU, cmd.MemoryMiB, cmd.Version)
	if err != nil {
		return domain.Reservation{}, err
	}
	return h.Reservations.Settle(ctx, cmd.Key, func(r domain.Reservation) (domain.Reservation, error) {
		if r.State == domain.Expired {
			// Its growth was not held since it expired; the VM exists, so it counts from now on.
			h.Log.WarnContext(ctx, "reservation committed after it expired; raise LIMEN_QUOTA_RESERVATION_TTL if this recurs",
				"key", r.Key, "user_id", r.UserID, "vm_uuid", r.VM)
		}
		return r.Commit()
	}, &size)
}
