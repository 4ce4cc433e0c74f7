package app

import (
	"context"
	"time"

	"limen/auth-service/internal/domain"
)

// Refresh asks for a new pair for RefreshToken, presented by Client.
type Refresh struct {
	RefreshToken string
	Client       Client
}

// RefreshHandler spends a refresh token for a new pair; a spent token presented again revokes its
// login, unless the client that spent it presents it again within Grace (LIMEN_REFRESH_REUSE_GRACE).
//
// Two tabs of one browser refreshing at once present the same token, and without a grace the slower
// one ends the login. Within the grace, the client that rotated the token (same address and
// User-Agent, remembered as a fingerprint on the spent token) is given a new sibling refresh token
// in the same family and a fresh access token; the family is not revoked. A sibling was chosen over
// handing back the very successor the first tab got: only hashes of refresh tokens are stored, and
// returning the successor would mean keeping it decryptable under yet another server key, whereas a
// sibling keeps nothing secret and ends with its family (logout, suspension, theft) like any other
// token. Reuse after the grace, or by any other client, is still taken for theft: the family is
// revoked and the answer is 401.
type RefreshHandler struct {
	Users    Users
	sessions sessionIssuer
	Grace    time.Duration
	Now      Clock
}

// Client is who presents a refresh token.
type Client struct {
	IP        string
	UserAgent string
}

// NewRefreshHandler issues sessions with access, saving their refresh tokens, which last refreshTTL, in
// refresh.
func NewRefreshHandler(users Users, access AccessTokens, refresh RefreshTokens, refreshTTL, grace time.Duration, now Clock) RefreshHandler {
	return RefreshHandler{Users: users, Grace: grace, Now: now, sessions: sessionIssuer{access: access, refresh: refresh, refreshTTL: refreshTTL}}
}

func (h RefreshHandler) Handle(ctx context.Context, cmd Refresh) (*domain.Session, error) {
	if cmd.RefreshToken == "" {
		return nil, domain.ErrInvalidRefreshToken
	}
	now := h.Now()
	token, hash := newRefreshToken()
	fingerprint := domain.ClientFingerprint(cmd.Client.IP, cmd.Client.UserAgent)
	spent, err := h.sessions.refresh.Rotate(ctx, Rotation{
		Presented: HashRefreshToken(cmd.RefreshToken), Client: fingerprint, Now: now,
		Reusable: func(spent domain.RefreshToken) bool { return spent.ReusableBy(fingerprint, now, h.Grace) },
		Next: func(spent domain.RefreshToken) domain.RefreshToken {
			return domain.RefreshToken{Hash: hash, FamilyID: spent.FamilyID, UserID: spent.UserID, ExpiresAt: now.Add(h.sessions.refreshTTL)}
		},
	})
	if err != nil {
		return nil, err
	}
	u, err := h.Users.ByID(ctx, spent.UserID)
	if err != nil || !u.Approved {
		// The account went away or was suspended since the login: end this login too.
		_ = h.sessions.refresh.RevokeFamilyOf(ctx, hash, now)
		return nil, domain.ErrInvalidRefreshToken
	}
	return h.sessions.session(u, spent.FamilyID, token, now.Add(h.sessions.refreshTTL), now)
}
