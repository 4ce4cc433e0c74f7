package app

import (
	"context"
	"errors"

	"limen/auth-service/internal/domain"
)

// Caller is who a verified access token says is calling.
type Caller struct {
	UserID int64
}

// CurrentUser asks for the caller's own account.
type CurrentUser struct {
	Caller Caller
}

// CurrentUserHandler loads the caller's account; a deleted or suspended account's tokens stop working.
type CurrentUserHandler struct {
	Users Users
}

func (h CurrentUserHandler) Handle(ctx context.Context, q CurrentUser) (*domain.User, error) {
	u, err := h.Users.ByID(ctx, q.Caller.UserID)
	if errors.Is(err, domain.ErrUserNotFound) || err == nil && !u.Approved {
		return nil, domain.ErrNotAuthenticated
	}
	return u, err
}
