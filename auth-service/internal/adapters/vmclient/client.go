// Package vmclient asks vm-service's internal API how many VMs a user owns.
package vmclient

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"

	"limen/auth-service/internal/domain"
)

// Client implements app.OwnedVMs over GET {base}/internal/owners/{id}/usage.
type Client struct {
	base  string
	token string
	http  *http.Client
}

// New talks to vm-service at base, presenting the shared internal token.
func New(base, token string) *Client {
	return &Client{base: base, token: token, http: &http.Client{Timeout: 5 * time.Second}}
}

func (c *Client) CountOwnedBy(ctx context.Context, userID int64) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/internal/owners/"+strconv.FormatInt(userID, 10)+"/usage", nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	otel.GetTextMapPropagator().Inject(ctx, propagation.HeaderCarrier(req.Header))
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%w: %v", domain.ErrVMServiceDown, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if err != nil || resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("%w: answered %d: %s", domain.ErrVMServiceDown, resp.StatusCode, body)
	}
	var usage struct {
		VMs int `json:"vms"`
	}
	if err := json.Unmarshal(body, &usage); err != nil {
		return 0, fmt.Errorf("%w: %v", domain.ErrVMServiceDown, err)
	}
	return usage.VMs, nil
}
