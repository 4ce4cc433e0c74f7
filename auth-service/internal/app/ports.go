// Package app holds auth-service's use cases, one a file, and the ports they need.
package app

import (
	"context"
	"time"

	"limen/auth-service/internal/domain"
)

// Users stores accounts.
type Users interface {
	// Create stores a new user; domain.ErrUsernameTaken when the name is taken (case-insensitively).
	Create(ctx context.Context, u *domain.User) error
	ByUsername(ctx context.Context, username string) (*domain.User, error)
	ByID(ctx context.Context, id int64) (*domain.User, error)
	List(ctx context.Context, limit, offset int) (users []*domain.User, total int, err error)
	// Update runs change on the user inside a transaction that also holds the count of active admins
	// steady, then saves the user.
	Update(ctx context.Context, id int64, change func(*domain.User, domain.Admins) error) (*domain.User, error)
	// Delete removes the user if check allows it, under the same guarantee as Update.
	Delete(ctx context.Context, id int64, check func(*domain.User, domain.Admins) error) error
}

// RefreshTokens stores the hashes of refresh tokens by login family.
type RefreshTokens interface {
	Save(ctx context.Context, t domain.RefreshToken) error
	// Rotate spends the token with hash presented and saves next in its family, returning the spent
	// token. A token that was already spent revokes its family and yields domain.ErrInvalidRefreshToken,
	// as does an unknown, revoked or expired one.
	Rotate(ctx context.Context, presented []byte, now time.Time, next func(spent domain.RefreshToken) domain.RefreshToken) (domain.RefreshToken, error)
	RevokeFamilyOf(ctx context.Context, hash []byte, now time.Time) error
	RevokeUser(ctx context.Context, userID int64, now time.Time) error
}

// PasswordHasher hashes passwords and checks them in constant time.
type PasswordHasher interface {
	Hash(password string) (string, error)
	Verify(password, hash string) (bool, error)
}

// AccessTokens signs access tokens.
type AccessTokens interface {
	Issue(u *domain.User, now time.Time) (token string, expiresAt time.Time, err error)
}

// LoginLimit is a counter of failed logins and how many it allows within the window.
type LoginLimit struct {
	Key string
	Max int
}

// LoginThrottle counts failed logins, shared by every replica.
type LoginThrottle interface {
	// LockedFor is how long the most restrictive of the limits still refuses logins (0: not locked).
	LockedFor(ctx context.Context, limits []LoginLimit, window time.Duration, now time.Time) (time.Duration, error)
	RecordFailure(ctx context.Context, limits []LoginLimit, window time.Duration, now time.Time) error
	Reset(ctx context.Context, key string) error
}

// Clock tells the time; tests set it.
type Clock func() time.Time
