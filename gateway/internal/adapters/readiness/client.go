// Package readiness asks LIMEN services for their /readyz.
package readiness

import (
	"context"
	"encoding/json"
	"net/http"

	"limen/gateway/internal/app"
	"limen/gateway/internal/domain"
)

// Client implements app.ServiceProbe over HTTP.
type Client struct {
	http  *http.Client
	bases map[domain.Upstream]string
}

// New probes the services at the given base URLs.
func New(bases map[domain.Upstream]string) *Client {
	return &Client{http: &http.Client{}, bases: bases}
}

func (c *Client) Ready(ctx context.Context, u domain.Upstream) app.Readiness {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.bases[u]+"/readyz", nil)
	if err != nil {
		return app.Readiness{}
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return app.Readiness{}
	}
	defer resp.Body.Close()
	var body struct {
		Checks map[string]string `json:"checks"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return app.Readiness{}
	}
	return app.Readiness{Reachable: true, OK: resp.StatusCode == http.StatusOK, Checks: body.Checks}
}
