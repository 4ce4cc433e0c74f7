// Package authclient asks auth-service's internal API whether a user exists.
package authclient

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"

	"limen/libs/contract"
	"limen/quota-service/internal/domain"
)

// Client implements app.Users over auth-service's contract.InternalUserRoute.
type Client struct {
	base  string
	token string
	http  *http.Client
}

// New talks to auth-service at base, presenting the shared internal token.
func New(base, token string) *Client {
	return &Client{base: base, token: token, http: &http.Client{Timeout: 5 * time.Second}}
}

func (c *Client) Exists(ctx context.Context, userID int64) (bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+contract.InternalUserPath(userID), nil)
	if err != nil {
		return false, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	otel.GetTextMapPropagator().Inject(ctx, propagation.HeaderCarrier(req.Header))
	resp, err := c.http.Do(req)
	if err != nil {
		return false, fmt.Errorf("%w: %v", domain.ErrAuthServiceDown, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return false, fmt.Errorf("%w: %v", domain.ErrAuthServiceDown, err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
		var u contract.InternalUser
		if err := json.Unmarshal(body, &u); err != nil || u.ID != userID {
			return false, fmt.Errorf("auth-service answered user %d with %q", userID, body)
		}
		return true, nil
	case http.StatusNotFound:
		return false, nil
	case http.StatusServiceUnavailable, http.StatusBadGateway, http.StatusGatewayTimeout:
		return false, domain.ErrAuthServiceDown
	}
	return false, fmt.Errorf("auth-service answered %d: %s", resp.StatusCode, body)
}
