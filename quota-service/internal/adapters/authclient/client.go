// Package authclient asks auth-service's internal API whether a user exists.
package authclient

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"limen/libs/contract"
	"limen/libs/internalapi"
	"limen/quota-service/internal/domain"
)

// Client implements app.Users over auth-service's contract.InternalUserRoute.
type Client struct {
	api *internalapi.Client
}

// New talks to auth-service at base, presenting the shared internal token.
func New(base, token string) *Client {
	return &Client{api: internalapi.New(internalapi.Config{Base: base, Token: token, Timeout: 5 * time.Second})}
}

func (c *Client) Exists(ctx context.Context, userID int64) (bool, error) {
	answer, err := c.api.Get(ctx, contract.InternalUserPath(userID))
	if err != nil {
		return false, fmt.Errorf("%w: %v", domain.ErrAuthServiceDown, err)
	}
	switch answer.Status {
	case http.StatusOK:
		var u contract.InternalUser
		if err := answer.Decode(&u); err != nil || u.ID != userID {
			return false, fmt.Errorf("auth-service answered user %d with %q", userID, answer.Body)
		}
		return true, nil
	case http.StatusNotFound:
		return false, nil
	case http.StatusServiceUnavailable, http.StatusBadGateway, http.StatusGatewayTimeout:
		return false, domain.ErrAuthServiceDown
	}
	return false, fmt.Errorf("auth-service answered %d: %s", answer.Status, answer.Body)
}
