// Package vmclient asks vm-service's internal API who owns a VM.
package vmclient

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"

	"limen/libs/contract"
	"limen/media-service/internal/domain"
)

// Client implements app.VMs over vm-service's contract.InternalVMRoute.
type Client struct {
	base  string
	token string
	http  *http.Client
}

// New talks to vm-service at base, presenting the shared internal token.
func New(base, token string) *Client {
	return &Client{base: base, token: token, http: &http.Client{Timeout: 5 * time.Second}}
}

type errorResponse struct {
	Message string `json:"message"`
}

func (c *Client) Lookup(ctx context.Context, ref string) (domain.VM, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+contract.InternalVMPath(ref), nil)
	if err != nil {
		return domain.VM{}, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	otel.GetTextMapPropagator().Inject(ctx, propagation.HeaderCarrier(req.Header))
	resp, err := c.http.Do(req)
	if err != nil {
		return domain.VM{}, fmt.Errorf("%w: %v", domain.ErrVMServiceDown, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return domain.VM{}, fmt.Errorf("%w: %v", domain.ErrVMServiceDown, err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
		var vm contract.InternalVM
		if err := json.Unmarshal(body, &vm); err != nil {
			return domain.VM{}, fmt.Errorf("vm-service answer: %w", err)
		}
		id, err := uuid.Parse(vm.UUID)
		if err != nil {
			return domain.VM{}, fmt.Errorf("vm-service answer: uuid: %w", err)
		}
		return domain.VM{UUID: id, OwnerID: vm.OwnerID, Status: vm.Status}, nil
	case http.StatusNotFound:
		return domain.VM{}, domain.ErrVMNotFound
	case http.StatusBadRequest:
		var e errorResponse
		_ = json.Unmarshal(body, &e)
		return domain.VM{}, domain.Invalid(e.Message)
	case http.StatusServiceUnavailable, http.StatusBadGateway, http.StatusGatewayTimeout:
		return domain.VM{}, domain.ErrVMServiceDown
	}
	return domain.VM{}, fmt.Errorf("vm-service answered %d: %s", resp.StatusCode, body)
}
