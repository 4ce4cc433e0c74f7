package app

import (
	"context"

	"limen/vm-service/internal/domain"
)

// GetStats asks for the load of one VM the caller may see.
type GetStats struct {
	Caller Caller
	Ref    domain.Ref
}

// GetStatsHandler answers from the record and the latest samples (see SampleStatsHandler).
type GetStatsHandler struct {
	Repo  Repository
	Cache *StatsCache
	Now   Clock
}

func (uc GetStatsHandler) Handle(ctx context.Context, q GetStats) (domain.Stats, error) {
	vm, err := load(ctx, uc.Repo, q.Caller, q.Ref)
	if err != nil {
		return domain.Stats{}, err
	}
	return uc.Cache.statsOf(vm, uc.Now()), nil
}
