// Package app holds auth-service's use cases, one a file, and the ports they need.
package app

import (
	"context"
	"time"

	"github.com/google/uuid"

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
	// Delete removes the user if check allows it, under the same guarantee as Update; withVMs tells
	// vm-service, through the deletion's event, to delete the user's VMs.
	Delete(ctx context.Context, id int64, withVMs bool, check func(*domain.User, domain.Admins) error) error
}

// RefreshTokens stores the hashes of refresh tokens by login family.
type RefreshTokens interface {
	Save(ctx context.Context, t domain.RefreshToken) error
	// Rotate spends the token with hash r.Presented, remembering r.Client as who rotated it, and saves
	// r.Next in its family, returning the spent token. A token that was already spent is saved a
	// sibling (r.Next, the spent token left as it is) when r.Reusable allows; otherwise it revokes its
	// family and yields domain.ErrInvalidRefreshToken, as does an unknown, revoked or expired one.
	Rotate(ctx context.Context, r Rotation) (domain.RefreshToken, error)
	RevokeFamilyOf(ctx context.Context, hash []byte, now time.Time) error
	RevokeUser(ctx context.Context, userID int64, now time.Time) error
}

// Rotation is one refresh: the presented token, who presents it and what to save in its place.
type Rotation struct {
	Presented []byte
	// Client is the presenter's domain.ClientFingerprint, stored on the token it spends.
	Client []byte
	Now    time.Time
	// Reusable tells a spent token presented again by the same client within the grace (a race
	// between two tabs) apart from theft.
	Reusable func(spent domain.RefreshToken) bool
	Next     func(spent domain.RefreshToken) domain.RefreshToken
}

// PasswordHasher hashes passwords and checks them in constant time. Both may fail with
// domain.ErrBusy when too many hashes are running for a slot to free up soon, or with ctx's error
// when the caller stops waiting for one.
type PasswordHasher interface {
	Hash(ctx context.Context, password string) (string, error)
	Verify(ctx context.Context, password, hash string) (bool, error)
}

// AccessTokens signs access tokens.
type AccessTokens interface {
	// Issue signs a token of the user's current token version for one login (session).
	Issue(u *domain.User, sessionID uuid.UUID, now time.Time) (token string, expiresAt time.Time, err error)
}

// Limit is a counter of attempts (Key) and how many attempts it admits within a window.
type Limit struct {
	Key string
	Max int
}

// Reserved is one attempt Throttle.Reserve counted: its key and the start of the window it counts in.
type Reserved struct {
	Key         string
	WindowStart time.Time
}

// Throttle counts attempts (logins, registrations) per key in fixed windows that start with a key's
// first attempt, shared by every replica.
type Throttle interface {
	// Reserve counts one attempt against every limit atomically, all or none: when any limit has
	// admitted its Max attempts in the current window, nothing is counted and locked is how long
	// until the last of the exhausted windows ends. However many calls run at once, no key admits
	// more than Max attempts per window.
	Reserve(ctx context.Context, limits []Limit, window time.Duration, now time.Time) (reserved []Reserved, locked time.Duration, err error)
	// Release takes back reserved attempts that turned out not to be failures, each only in the
	// window it was counted in; resetKey's counter (when among them) is cleared altogether.
	Release(ctx context.Context, reserved []Reserved, resetKey string) error
}

// Clock tells the time; tests set it.
type Clock func() time.Time
