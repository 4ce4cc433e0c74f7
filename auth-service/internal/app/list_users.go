package app

import (
	"context"
	"errors"
	"fmt"

	"limen/auth-service/internal/domain"
	"limen/libs/contract"
	"limen/libs/failure"
)

// Paging limits of the user list; a page's usage is one call to vm-service, which takes that many.
const (
	DefaultPageSize = 50
	MaxPageSize     = contract.MaxOwnersPerUsageCall
)

// ListUsers asks for one page of accounts: Limit of them from Offset on.
type ListUsers struct {
	Limit  int
	Offset int
}

// VMUsage sums what users' VMs take (vm-service).
type VMUsage interface {
	// UsageOf answers for every id (zeros for a user without VMs) in one call, or fails with
	// domain.ErrVMServiceDown.
	UsageOf(ctx context.Context, userIDs []int64) (map[int64]contract.OwnerUsage, error)
}

// ListUsersHandler pages through accounts for an admin, with what each one's VMs take. Without
// vm-service (VMs nil) nobody owns VMs. When vm-service cannot say, the page comes without usage
// rather than not at all: the list is how an admin approves and manages accounts, which need no VM.
type ListUsersHandler struct {
	Users Users
	VMs   VMUsage
}

// UserPage is one page of the list.
type UserPage struct {
	Users []*domain.User
	// Usage is by user id; UsageKnown is false when vm-service could not say.
	Usage      map[int64]contract.OwnerUsage
	UsageKnown bool
	Total      int
	Limit      int
	Offset     int
}

func (h ListUsersHandler) Handle(ctx context.Context, q ListUsers) (UserPage, error) {
	if q.Limit < 1 || q.Limit > MaxPageSize {
		return UserPage{}, failure.InvalidField("limit", fmt.Sprintf("Query parameter 'limit' must be between 1 and %d", MaxPageSize))
	}
	if q.Offset < 0 {
		return UserPage{}, failure.InvalidField("offset", "Query parameter 'offset' must be 0 or more")
	}
	users, total, err := h.Users.List(ctx, q.Limit, q.Offset)
	if err != nil {
		return UserPage{}, err
	}
	page := UserPage{Users: users, UsageKnown: true, Total: total, Limit: q.Limit, Offset: q.Offset}
	if h.VMs == nil || len(users) == 0 {
		return page, nil
	}
	ids := make([]int64, len(users))
	for i, u := range users {
		ids[i] = u.ID
	}
	page.Usage, err = h.VMs.UsageOf(ctx, ids)
	switch {
	case errors.Is(err, domain.ErrVMServiceDown):
		page.UsageKnown = false
	case err != nil:
		return UserPage{}, err
	}
	return page, nil
}
