// Package domain holds auth-service's users and login sessions, the rules they obey and the errors
// that break them. It knows nothing of HTTP, Postgres or JWT libraries.
package domain

import (
	"regexp"
	"time"

	"github.com/google/uuid"

	"limen/libs/failure"
)

// Role is what a user may do.
type Role string

const (
	RoleAdmin Role = "admin"
	RoleUser  Role = "user"
)

// ParseRole accepts "admin" and "user".
func ParseRole(s string) (Role, error) {
	switch Role(s) {
	case RoleAdmin, RoleUser:
		return Role(s), nil
	}
	return "", failure.InvalidField("role", "Field 'role' must be one of: admin, user")
}

var usernamePattern = regexp.MustCompile(`^[a-zA-Z0-9_.-]{3,32}$`)

// ValidateUsername enforces 3–32 characters of letters, digits, '_', '.', '-'.
func ValidateUsername(name string) error {
	if !usernamePattern.MatchString(name) {
		return failure.InvalidField("username", "Field 'username' must be 3-32 characters of letters, digits, '_', '.' or '-'")
	}
	return nil
}

// ValidatePassword enforces 8–128 characters.
func ValidatePassword(password string) error {
	if n := len([]rune(password)); n < 8 || n > 128 {
		return failure.InvalidField("password", "Field 'password' must be 8-128 characters")
	}
	return nil
}

// User is an account.
type User struct {
	ID           int64
	UUID         uuid.UUID
	Username     string
	PasswordHash string
	Role         Role
	Approved     bool
	// TokenVersion rises with every change of role or approval; tokens signed with a lower one are
	// revoked everywhere (libs/revocation).
	TokenVersion int64
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

// NewUser is a registration: a plain user, approved only when the service auto-approves.
func NewUser(username, passwordHash string, approved bool, now time.Time) *User {
	return &User{UUID: uuid.New(), Username: username, PasswordHash: passwordHash, Role: RoleUser,
		Approved: approved, CreatedAt: now, UpdatedAt: now}
}

// IsActiveAdmin reports whether the user counts towards the admins that must never run out.
func (u *User) IsActiveAdmin() bool { return u.Role == RoleAdmin && u.Approved }

// Admins is how many active admins exist while a change to one user is decided.
type Admins int

// SetRole changes the role, refusing to demote the last active admin.
func (u *User) SetRole(role Role, admins Admins, now time.Time) error {
	if u.IsActiveAdmin() && role != RoleAdmin && admins <= 1 {
		return ErrLastAdmin
	}
	if u.Role != role {
		u.TokenVersion++
	}
	u.Role, u.UpdatedAt = role, now
	return nil
}

// SetApproved approves or suspends the user, refusing to suspend the last active admin.
func (u *User) SetApproved(approved bool, admins Admins, now time.Time) error {
	if u.IsActiveAdmin() && !approved && admins <= 1 {
		return ErrLastAdmin
	}
	if u.Approved != approved {
		u.TokenVersion++
	}
	u.Approved, u.UpdatedAt = approved, now
	return nil
}

// CheckDeletableBy refuses deleting oneself and the last active admin.
func (u *User) CheckDeletableBy(actorID int64, admins Admins) error {
	if u.ID == actorID {
		return ErrSelfDelete
	}
	if u.IsActiveAdmin() && admins <= 1 {
		return ErrLastAdmin
	}
	return nil
}
