package app

import (
	"context"

	"limen/auth-service/internal/domain"
)

// GetUser asks for the account ID.
type GetUser struct {
	ID int64
}

// GetUserHandler shows one account to an admin.
type GetUserHandler struct {
	Users Users
}

func (h GetUserHandler) Handle(ctx context.Context, q GetUser) (*domain.User, error) {
	return h.Users.ByID(ctx, q.ID)
}
