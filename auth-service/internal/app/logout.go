package app

import (
	"context"
)

// Logout asks to end the login RefreshToken belongs to.
type Logout struct {
	RefreshToken string
}

// LogoutHandler revokes the login a refresh token belongs to. An unknown token is not an error: the
// caller is logged out either way.
type LogoutHandler struct {
	Tokens RefreshTokens
	Now    Clock
}

func (h LogoutHandler) Handle(ctx context.Context, cmd Logout) error {
	if cmd.RefreshToken == "" {
		return nil
	}
	return h.Tokens.RevokeFamilyOf(ctx, HashRefreshToken(cmd.RefreshToken), h.Now())
}
