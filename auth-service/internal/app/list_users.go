package app

import (
	"context"

	"limen/auth-service/internal/domain"
)

// Paging limits of the user list.
const (
	DefaultPageSize = 50
	MaxPageSize     = 200
)

// ListUsers pages through accounts for an admin.
type ListUsers struct {
	Users Users
}

// UserPage is one page of the list.
type UserPage struct {
	Users  []*domain.User
	Total  int
	Limit  int
	Offset int
}

func (q ListUsers) Handle(ctx context.Context, limit, offset int) (UserPage, error) {
	if limit < 1 || limit > MaxPageSize {
		return UserPage{}, domain.Invalid("Query parameter 'limit' must be between 1 and 200")
	}
	if offset < 0 {
		return UserPage{}, domain.Invalid("Query parameter 'offset' must be 0 or more")
	}
	users, total, err := q.Users.List(ctx, limit, offset)
	if err != nil {
		return UserPage{}, err
	}
	return UserPage{Users: users, Total: total, Limit: limit, Offset: offset}, nil
}
