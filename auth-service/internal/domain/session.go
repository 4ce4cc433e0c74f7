package domain

import (
	"crypto/sha256"
	"crypto/subtle"
	"time"

	"github.com/google/uuid"
)

// RefreshToken is one link of a login's chain of refresh tokens. Only its hash is stored. All tokens
// of one login share a family, so reuse of a spent token can revoke the whole login.
type RefreshToken struct {
	Hash      []byte
	FamilyID  uuid.UUID
	UserID    int64
	ExpiresAt time.Time
	// UsedAt is when the token was rotated (nil: not yet), RotatedBy the fingerprint of the client
	// that rotated it (ClientFingerprint).
	UsedAt    *time.Time
	RotatedBy []byte
}

// ReusableBy tells a spent token presented again by the client that rotated it, within grace of the
// rotation, apart from theft: two tabs of one browser refreshing at once present the same token, and
// the slower one must not end the login. Anyone else, or anything later, is treated as a stolen token.
func (t RefreshToken) ReusableBy(client []byte, now time.Time, grace time.Duration) bool {
	return t.UsedAt != nil && grace > 0 && len(t.RotatedBy) > 0 && subtle.ConstantTimeCompare(t.RotatedBy, client) == 1 &&
		now.Before(t.UsedAt.Add(grace))
}

// ClientFingerprint is the SHA-256 of a client's address and User-Agent: what a refresh token's
// rotation remembers of who rotated it (the address and agent themselves are not stored).
func ClientFingerprint(ip, userAgent string) []byte {
	sum := sha256.Sum256([]byte(ip + "\x00" + userAgent))
	return sum[:]
}

// Session is what a login or refresh hands out.
type Session struct {
	User             *User
	AccessToken      string
	AccessExpiresAt  time.Time
	RefreshToken     string
	RefreshExpiresAt time.Time
}
