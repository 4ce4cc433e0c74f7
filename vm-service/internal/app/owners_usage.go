package app

import (
	"context"
	"fmt"

	"limen/libs/contract"
	"limen/libs/failure"
	"limen/vm-service/internal/domain"
)

// OwnersUsage asks what several users' VMs take (auth-service asks it for a page of its user list).
type OwnersUsage struct {
	OwnerIDs []int64
}

// OwnersUsageHandler answers from the records in one query; every owner asked for is in the answer,
// with zeros when it has no VMs.
type OwnersUsageHandler struct {
	Repo UsageByOwner
}

// ErrTooManyOwners is a call for more owners than one page of users.
var ErrTooManyOwners = failure.InvalidField("ids", fmt.Sprintf("At most %d user ids per call", contract.MaxOwnersPerUsageCall))

func (uc OwnersUsageHandler) Handle(ctx context.Context, q OwnersUsage) (map[int64]domain.Usage, error) {
	if len(q.OwnerIDs) > contract.MaxOwnersPerUsageCall {
		return nil, ErrTooManyOwners
	}
	usage, err := uc.Repo.UsageByOwner(ctx, q.OwnerIDs)
	if err != nil {
		return nil, err
	}
	for _, id := range q.OwnerIDs {
		if _, ok := usage[id]; !ok {
			usage[id] = domain.Usage{}
		}
	}
	return usage, nil
}
