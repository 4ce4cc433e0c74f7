// Package vmclient asks vm-service's public API for VM lists on a user's behalf.
package vmclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"

	"limen/libs/logging"
	"limen/libs/web"
)

// maxListBytes bounds a list body; an admin's list of every VM stays far below it.
const maxListBytes = 64 << 20

// Client implements app.VMLister over HTTP.
type Client struct {
	base string
	http *http.Client
}

// idleConns is how many connections to vm-service are kept open between lists: every live status
// socket opening asks for one, often many at once, and a new connection per list (beyond net/http's
// default of 2) costs its buffers and goroutines each time.
const idleConns = 64

// New lists VMs at vm-service's base URL.
func New(base string) *Client {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = idleConns
	return &Client{base: base, http: &http.Client{Transport: transport}}
}

// ListVMs calls GET /api/vms (with ?all=true for everyone's) with the user's own token, so vm-service
// applies its own ownership rules and the list is exactly what the user would get from the API.
func (c *Client) ListVMs(ctx context.Context, token string, all bool) (json.RawMessage, error) {
	url := c.base + "/api/vms"
	if all {
		url += "?all=true"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	if id := logging.RequestID(ctx); id != "" {
		req.Header.Set(web.HeaderRequestID, id)
	}
	otel.GetTextMapPropagator().Inject(ctx, propagation.HeaderCarrier(req.Header))
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("listing VMs: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxListBytes+1))
	if err != nil {
		return nil, fmt.Errorf("listing VMs: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("listing VMs: vm-service answered %d: %.200s", resp.StatusCode, body)
	}
	if len(body) > maxListBytes {
		return nil, errors.New("listing VMs: list too large")
	}
	body = bytes.TrimSpace(body)
	if bytes.Equal(body, []byte("null")) {
		return json.RawMessage("[]"), nil
	}
	if len(body) == 0 || body[0] != '[' || !json.Valid(body) {
		return nil, errors.New("listing VMs: vm-service did not answer a JSON array")
	}
	// A live status socket keeps its list for as long as it is open: not the read buffer around it.
	return bytes.Clone(body), nil
}
