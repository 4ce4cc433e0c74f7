package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"strconv"

	"github.com/google/uuid"

	"limen/vm-service/internal/domain"
)

// hold is a growth quota-service holds for one change until it is settled: committed with the row
// as written, or released. A change that does not grow holds nothing, and settling it does nothing.
type hold struct {
	quota  Reservations
	change domain.QuotaChange
	log    *slog.Logger
}

// reserve asks quota-service for the change's growth before anything is made; its refusal (over
// quota, or quota-service out of reach) is the request's answer.
func reserve(ctx context.Context, quota Reservations, log *slog.Logger, change domain.QuotaChange) (*hold, error) {
	if !change.Grows() {
		return nil, nil
	}
	if err := quota.Reserve(ctx, change); err != nil {
		return nil, err
	}
	return &hold{quota: quota, change: change, log: log}, nil
}

// commit settles the hold with vm as its change wrote it. A commit that fails is only logged:
// quota-service follows the VM's event, and the hold expires.
func (h *hold) commit(ctx context.Context, vm *domain.VM) {
	if h == nil {
		return
	}
	if err := h.quota.Commit(context.WithoutCancel(ctx), h.change.Key, vm); err != nil {
		h.log.WarnContext(ctx, "committing a quota reservation failed; quota-service repairs it from the VM events", "key", h.change.Key, "err", err)
	}
}

// release gives the hold back: the change was not made. One that fails is only logged: it expires.
func (h *hold) release(ctx context.Context) {
	if h == nil {
		return
	}
	if err := h.quota.Release(context.WithoutCancel(ctx), h.change.Key); err != nil {
		h.log.WarnContext(ctx, "releasing a quota reservation failed; it expires", "key", h.change.Key, "err", err)
	}
}

// releaseVM tells quota-service that vm is gone; a release that fails is only logged, as a delete
// never waits for quota-service: the VM's deletion event frees its usage there too.
func releaseVM(ctx context.Context, quota Reservations, log *slog.Logger, vm *domain.VM) {
	if err := quota.ReleaseVM(context.WithoutCancel(ctx), vm); err != nil {
		log.WarnContext(ctx, "releasing a deleted VM's quota usage failed; quota-service repairs it from the VM events", "vm_uuid", vm.UUID, "err", err)
	}
}

// createKey names the reservation of a create: the VM's uuid is new for every request.
func createKey(vm uuid.UUID) string { return "create:" + vm.String() }

// changeKey names the reservation of one resize or restore of vm at version. Two requests may read
// the same version at once and ask for different sizes: each attempt gets its own nonce, so neither
// is taken for a repeat of the other, nor released by the other's refusal.
func changeKey(kind string, vm uuid.UUID, version int64) string {
	var nonce [6]byte
	_, _ = rand.Read(nonce[:])
	return kind + ":" + vm.String() + ":" + strconv.FormatInt(version, 10) + ":" + hex.EncodeToString(nonce[:])
}
