package app

import (
	"context"
)

// Logout revokes the login a refresh token belongs to. An unknown token is not an error: the
// caller is logged out either way.
type Logout struct {
	Tokens RefreshTokens
	Now    Clock
}

func (l Logout) Handle(ctx context.Context, refreshToken string) error {
	if refreshToken == "" {
		return nil
	}
	return l.Tokens.RevokeFamilyOf(ctx, HashRefreshToken(refreshToken), l.Now())
}
