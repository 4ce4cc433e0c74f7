package app

import (
	"context"
	"time"

	"limen/auth-service/internal/domain"
)

// Refresh spends a refresh token for a new pair; a spent token presented again revokes its login.
type Refresh struct {
	Users    Users
	sessions sessionIssuer
	Now      Clock
}

func NewRefresh(users Users, access AccessTokens, refresh RefreshTokens, refreshTTL time.Duration, now Clock) *Refresh {
	return &Refresh{Users: users, Now: now, sessions: sessionIssuer{access: access, refresh: refresh, refreshTTL: refreshTTL}}
}

func (r *Refresh) Handle(ctx context.Context, refreshToken string) (*domain.Session, error) {
	if refreshToken == "" {
		return nil, domain.ErrInvalidRefreshToken
	}
	now := r.Now()
	token, hash := newRefreshToken()
	spent, err := r.sessions.refresh.Rotate(ctx, HashRefreshToken(refreshToken), now, func(spent domain.RefreshToken) domain.RefreshToken {
		return domain.RefreshToken{Hash: hash, FamilyID: spent.FamilyID, UserID: spent.UserID, ExpiresAt: now.Add(r.sessions.refreshTTL)}
	})
	if err != nil {
		return nil, err
	}
	u, err := r.Users.ByID(ctx, spent.UserID)
	if err != nil || !u.Approved {
		// The account went away or was suspended since the login: end this login too.
		_ = r.sessions.refresh.RevokeFamilyOf(ctx, hash, now)
		return nil, domain.ErrInvalidRefreshToken
	}
	return r.sessions.session(u, token, now.Add(r.sessions.refreshTTL), now)
}
