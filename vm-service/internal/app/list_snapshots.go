package app

import (
	"context"

	"limen/vm-service/internal/domain"
)

// ListSnapshots asks for the snapshots of a VM the caller may see.
type ListSnapshots struct {
	Caller Caller
	Ref    domain.Ref
}

// ListSnapshotsHandler answers from the records: the snapshots taken, oldest first.
type ListSnapshotsHandler struct {
	Repo      Repository
	Snapshots SnapshotRepository
}

func (uc ListSnapshotsHandler) Handle(ctx context.Context, q ListSnapshots) ([]*domain.Snapshot, error) {
	vm, err := load(ctx, uc.Repo, q.Caller, q.Ref)
	if err != nil {
		return nil, err
	}
	all, err := uc.Snapshots.List(ctx, vm.ID)
	if err != nil {
		return nil, err
	}
	taken := make([]*domain.Snapshot, 0, len(all))
	for _, s := range all {
		if s.Taken {
			taken = append(taken, s)
		}
	}
	return taken, nil
}
