package app

import (
	"context"

	"limen/auth-service/internal/domain"
)

// FindUser asks a peer service's question: does account ID exist, and what is it?
type FindUser struct {
	ID int64
}

// FindUserHandler answers it from the accounts alone; domain.ErrUserNotFound when there is none.
type FindUserHandler struct {
	Users Users
}

func (h FindUserHandler) Handle(ctx context.Context, q FindUser) (*domain.User, error) {
	return h.Users.ByID(ctx, q.ID)
}
