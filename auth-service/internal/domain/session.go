package domain

import (
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
}

// Session is what a login or refresh hands out.
type Session struct {
	User             *User
	AccessToken      string
	AccessExpiresAt  time.Time
	RefreshToken     string
	RefreshExpiresAt time.Time
}
