package app

import (
	"context"
	"time"

	"limen/auth-service/internal/domain"
)

// Refresh spends a refresh token for a new pair; a spent token presented again revokes its login,
// unless the client that spent it presents it again within Grace (LIMEN_REFRESH_REUSE_GRACE).
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
type Refresh struct {
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

func NewRefresh(users Users, access AccessTokens, refresh RefreshTokens, refreshTTL, grace time.Duration, now Clock) *Refresh {
	return &Refresh{Users: users, Grace: grace, Now: now, sessions: sessionIssuer{access: access, refresh: refresh, refreshTTL: refreshTTL}}
}

func (r *Refresh) Handle(ctx context.Context, refreshToken string, client Client) (*domain.Session, error) {
	if refreshToken == "" {
		return nil, domain.ErrInvalidRefreshToken
	}
	now := r.Now()
	token, hash := newRefreshToken()
	fingerprint := domain.ClientFingerprint(client.IP, client.UserAgent)
	spent, err := r.sessions.refresh.Rotate(ctx, Rotation{
		Presented: HashRefreshToken(refreshToken), Client: fingerprint, Now: now,
		Reusable: func(spent domain.RefreshToken) bool { return spent.ReusableBy(fingerprint, now, r.Grace) },
		Next: func(spent domain.RefreshToken) domain.RefreshToken {
			return domain.RefreshToken{Hash: hash, FamilyID: spent.FamilyID, UserID: spent.UserID, ExpiresAt: now.Add(r.sessions.refreshTTL)}
		},
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
	return r.sessions.session(u, spent.FamilyID, token, now.Add(r.sessions.refreshTTL), now)
}
