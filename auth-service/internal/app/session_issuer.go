package app

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"time"

	"github.com/google/uuid"

	"limen/auth-service/internal/domain"
)

// sessionIssuer hands out an access token and a refresh token; shared by login and refresh.
type sessionIssuer struct {
	access     AccessTokens
	refresh    RefreshTokens
	refreshTTL time.Duration
}

// newRefreshToken is 256 random bits; only its SHA-256 is stored.
func newRefreshToken() (token string, hash []byte) {
	raw := make([]byte, 32)
	_, _ = rand.Read(raw) // crypto/rand.Read never fails on Linux
	token = base64.RawURLEncoding.EncodeToString(raw)
	return token, HashRefreshToken(token)
}

// HashRefreshToken is how a presented refresh token is looked up.
func HashRefreshToken(token string) []byte {
	sum := sha256.Sum256([]byte(token))
	return sum[:]
}

// start opens a new login family.
func (s sessionIssuer) start(ctx context.Context, u *domain.User, now time.Time) (*domain.Session, error) {
	token, hash := newRefreshToken()
	rt := domain.RefreshToken{Hash: hash, FamilyID: uuid.New(), UserID: u.ID, ExpiresAt: now.Add(s.refreshTTL)}
	if err := s.refresh.Save(ctx, rt); err != nil {
		return nil, err
	}
	return s.session(u, rt.FamilyID, token, rt.ExpiresAt, now)
}

func (s sessionIssuer) session(u *domain.User, family uuid.UUID, refreshToken string, refreshExpires, now time.Time) (*domain.Session, error) {
	access, accessExpires, err := s.access.Issue(u, family, now)
	if err != nil {
		return nil, err
	}
	return &domain.Session{User: u, AccessToken: access, AccessExpiresAt: accessExpires,
		RefreshToken: refreshToken, RefreshExpiresAt: refreshExpires}, nil
}
