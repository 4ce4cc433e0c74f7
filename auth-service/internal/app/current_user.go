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

// CurrentUser loads the caller's account; a deleted or suspended account's tokens stop working.
type CurrentUser struct {
	Users Users
}

func (q CurrentUser) Handle(ctx context.Context, caller Caller) (*domain.User, error) {
	u, err := q.Users.ByID(ctx, caller.UserID)
	if errors.Is(err, domain.ErrUserNotFound) || err == nil && !u.Approved {
		return nil, domain.ErrNotAuthenticated
	}
	return u, err
}

// RequireAdmin loads the caller and insists on a current admin: the role is read from the database,
// so a demoted admin loses access before their token expires.
func (q CurrentUser) RequireAdmin(ctx context.Context, caller Caller) (*domain.User, error) {
	u, err := q.Handle(ctx, caller)
	if err != nil {
		return nil, err
	}
	if u.Role != domain.RoleAdmin {
		return nil, domain.ErrAdminRequired
	}
	return u, nil
}
