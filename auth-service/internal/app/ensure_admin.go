package app

import (
	"context"
	"errors"

	"limen/auth-service/internal/domain"
)

// EnsureAdmin creates the bootstrap admin, approved, when no account of that name exists
// (case-insensitively). An existing account is left exactly as it is, role, approval and password:
// promoting it at every start would undo an admin's demotion or suspension, and would hand admin to
// whoever registered the name after the bootstrap account was deleted.
type EnsureAdmin struct {
	Users  Users
	Hasher PasswordHasher
	Now    Clock
}

// EnsureAdminResult is what EnsureAdmin found or made, for the start-up log.
type EnsureAdminResult struct {
	// Created: the account was made now; otherwise User is the existing account, unchanged.
	Created bool
	User    *domain.User
}

func (c EnsureAdmin) Handle(ctx context.Context, username, password string) (EnsureAdminResult, error) {
	existing, err := c.Users.ByUsername(ctx, username)
	if err == nil {
		return EnsureAdminResult{User: existing}, nil
	}
	if !errors.Is(err, domain.ErrUserNotFound) {
		return EnsureAdminResult{}, err
	}
	if err := domain.ValidateUsername(username); err != nil {
		return EnsureAdminResult{}, err
	}
	if err := domain.ValidatePassword(password); err != nil {
		return EnsureAdminResult{}, err
	}
	hash, err := c.Hasher.Hash(ctx, password)
	if err != nil {
		return EnsureAdminResult{}, err
	}
	u := domain.NewUser(username, hash, true, c.Now())
	u.Role = domain.RoleAdmin
	err = c.Users.Create(ctx, u)
	if errors.Is(err, domain.ErrUsernameTaken) {
		// Made meanwhile (a replica starting at the same moment, or a registration): left as it is.
		existing, err = c.Users.ByUsername(ctx, username)
		return EnsureAdminResult{User: existing}, err
	}
	if err != nil {
		return EnsureAdminResult{}, err
	}
	return EnsureAdminResult{Created: true, User: u}, nil
}
