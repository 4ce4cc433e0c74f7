package app

import (
	"context"

	"limen/vm-service/internal/domain"
)

// ListStats asks for the load of the VMs GET /api/vms would list with the same All.
type ListStats struct {
	Caller Caller
	All    bool
}

// ListStatsHandler answers from one read of the records and the latest samples: no hypervisor call,
// however many VMs.
type ListStatsHandler struct {
	List  ListVMsHandler
	Cache *StatsCache
	Now   Clock
}

func (uc ListStatsHandler) Handle(ctx context.Context, q ListStats) ([]domain.Stats, error) {
	vms, err := uc.List.Handle(ctx, ListVMs(q))
	if err != nil {
		return nil, err
	}
	now := uc.Now()
	out := make([]domain.Stats, 0, len(vms))
	for _, vm := range vms {
		out = append(out, uc.Cache.statsOf(vm, now))
	}
	return out, nil
}
