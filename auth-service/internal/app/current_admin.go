package app

import (
	"context"

	"limen/auth-service/internal/domain"
)

// CurrentAdmin asks for the caller's own account, which must be an admin's.
type CurrentAdmin struct {
	Caller Caller
}

// CurrentAdminHandler loads the caller and insists on a current admin: the role is read from the
// database, so a demoted admin loses access before their token expires.
type CurrentAdminHandler struct {
	CurrentUser CurrentUserHandler
}

func (h CurrentAdminHandler) Handle(ctx context.Context, q CurrentAdmin) (*domain.User, error) {
	u, err := h.CurrentUser.Handle(ctx, CurrentUser{Caller: q.Caller})
	if err != nil {
		return nil, err
	}
	if u.Role != domain.RoleAdmin {
		return nil, domain.ErrAdminRequired
	}
	return u, nil
}
