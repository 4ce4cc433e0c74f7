package libvirt

import (
	"context"
	"log/slog"

	"github.com/google/uuid"

	"limen/libs/contract"
	"limen/libs/libvirtconn"
)

// Watch hands every lifecycle event of a LIMEN domain to observe until ctx is done. Other domains on
// a shared host are none of LIMEN's business.
func Watch(ctx context.Context, events <-chan libvirtconn.LifecycleEvent, observe func(context.Context, uuid.UUID) error, log *slog.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case e := <-events:
			if _, ours := contract.VMUUIDOfDomain(e.Name); !ours {
				continue
			}
			id := uuid.UUID(e.UUID)
			if err := observe(ctx, id); err != nil {
				log.WarnContext(ctx, "status update after a lifecycle event failed; the resync will repair it", "vm_uuid", id, "err", err)
			}
		}
	}
}
