package app

import (
	"context"

	"limen/auth-service/internal/domain"
	"limen/libs/failure"
)

// Paging limits of the user list.
const (
	DefaultPageSize = 50
	MaxPageSize     = 200
)

// ListUsers asks for one page of accounts: Limit of them from Offset on.
type ListUsers struct {
	Limit  int
	Offset int
}

// ListUsersHandler pages through accounts for an admin.
type ListUsersHandler struct {
	Users Users
}

// UserPage is one page of the list.
type UserPage struct {
	Users  []*domain.User
	Total  int
	Limit  int
	Offset int
}

func (h ListUsersHandler) Handle(ctx context.Context, q ListUsers) (UserPage, error) {
	if q.Limit < 1 || q.Limit > MaxPageSize {
		return UserPage{}, failure.InvalidField("limit", "Query parameter 'limit' must be between 1 and 200")
	}
	if q.Offset < 0 {
		return UserPage{}, failure.InvalidField("offset", "Query parameter 'offset' must be 0 or more")
	}
	users, total, err := h.Users.List(ctx, q.Limit, q.Offset)
	if err != nil {
		return UserPage{}, err
	}
	return UserPage{Users: users, Total: total, Limit: q.Limit, Offset: q.Offset}, nil
}
