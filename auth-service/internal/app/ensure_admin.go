package app

import (
	"context"
	"errors"

	"limen/auth-service/internal/domain"
)

// EnsureAdmin asks for the bootstrap admin Username with Password.
type EnsureAdmin struct {
	Username string
	Password string
}

// EnsureAdminHandler creates the bootstrap admin, approved, when no account of that name exists
// (case-insensitively). An existing account is left exactly as it is, role, approval and password:
// promoting it at every start would undo an admin's demotion or suspension, and would hand admin to
// whoever registered the name after the bootstrap account was deleted.
type EnsureAdminHandler struct {
	Users  Users
	Hasher PasswordHasher
	Now    Clock
}

// EnsureAdminResult is what EnsureAdminHandler found or made, for the start-up log.
type EnsureAdminResult struct {
	// Created: the account was made now; otherwise User is the existing account, unchanged.
	Created bool
	User    *domain.User
}

func (h EnsureAdminHandler) Handle(ctx context.Context, cmd EnsureAdmin) (EnsureAdminResult, error) {
	existing, err := h.Users.ByUsername(ctx, cmd.Username)
	if err == nil {
		return EnsureAdminResult{User: existing}, nil
	}
	if !errors.Is(err, domain.ErrUserNotFound) {
		return EnsureAdminResult{}, err
	}
	if err := domain.ValidateUsername(cmd.Username); err != nil {
		return EnsureAdminResult{}, err
	}
	if err := domain.ValidatePassword(cmd.Password); err != nil {
		return EnsureAdminResult{}, err
	}
	hash, err := h.Hasher.Hash(ctx, cmd.Password)
	if err != nil {
		return EnsureAdminResult{}, err
	}
	u := domain.NewUser(cmd.Username, hash, true, h.Now())
	u.Role = domain.RoleAdmin
	err = h.Users.Create(ctx, u)
	if errors.Is(err, domain.ErrUsernameTaken) {
		// Made meanwhile (a replica starting at the same moment, or a registration): left as it is.
		existing, err = h.Users.ByUsername(ctx, cmd.Username)
		return EnsureAdminResult{User: existing}, err
	}
	if err != nil {
		return EnsureAdminResult{}, err
	}
	return EnsureAdminResult{Created: true, User: u}, nil
}
