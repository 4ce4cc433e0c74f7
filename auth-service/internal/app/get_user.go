package app

import (
	"context"

	"limen/auth-service/internal/domain"
)

// GetUser shows one account to an admin.
type GetUser struct {
	Users Users
}

func (q GetUser) Handle(ctx context.Context, id int64) (*domain.User, error) {
	return q.Users.ByID(ctx, id)
}
