// Package vmclient asks vm-service's internal API who owns a VM.
package vmclient

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/google/uuid"

	"limen/libs/contract"
	"limen/libs/internalapi"
	"limen/media-service/internal/domain"
)

// Client implements app.VMs over vm-service's contract.InternalVMRoute.
type Client struct {
	api *internalapi.Client
}

// New talks to vm-service at base, presenting the shared internal token.
func New(base, token string) *Client {
	return &Client{api: internalapi.New(internalapi.Config{Base: base, Token: token, Timeout: 5 * time.Second})}
}

func (c *Client) Lookup(ctx context.Context, ref string) (domain.VM, error) {
	answer, err := c.api.Get(ctx, contract.InternalVMPath(ref))
	if err != nil {
		return domain.VM{}, fmt.Errorf("%w: %v", domain.ErrVMServiceDown, err)
	}
	switch answer.Status {
	case http.StatusOK:
		var vm contract.InternalVM
		if err := answer.Decode(&vm); err != nil {
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
		return domain.VM{}, domain.Invalid(answer.Message())
	case http.StatusServiceUnavailable, http.StatusBadGateway, http.StatusGatewayTimeout:
		return domain.VM{}, domain.ErrVMServiceDown
	}
	return domain.VM{}, fmt.Errorf("vm-service answered %d: %s", answer.Status, answer.Body)
}
