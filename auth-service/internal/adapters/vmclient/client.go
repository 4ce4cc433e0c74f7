// Package vmclient asks vm-service's internal API about the VMs users own.
package vmclient

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"limen/auth-service/internal/domain"
	"limen/libs/contract"
	"limen/libs/internalapi"
)

// Client implements app.OwnedVMs, app.VMUsage and app.UserVMs over vm-service's internal API.
type Client struct {
	api *internalapi.Client
}

// New talks to vm-service at base, presenting the shared internal token.
func New(base, token string) *Client {
	return &Client{api: internalapi.New(internalapi.Config{Base: base, Token: token, Timeout: 5 * time.Second, MaxAnswer: maxAnswer})}
}

// maxAnswer bounds what is read of an answer: a user's VM list is the largest (some 250 bytes a VM).
const maxAnswer = 16 << 20

func (c *Client) CountOwnedBy(ctx context.Context, userID int64) (int, error) {
	var usage contract.OwnerUsage
	if err := c.get(ctx, contract.InternalOwnerUsagePath(userID), &usage); err != nil {
		return 0, err
	}
	return usage.VMs, nil
}

// UsageOf asks for every id in one call; ids vm-service leaves out of its answer own nothing.
func (c *Client) UsageOf(ctx context.Context, userIDs []int64) (map[int64]contract.OwnerUsage, error) {
	out := make(map[int64]contract.OwnerUsage, len(userIDs))
	if len(userIDs) == 0 {
		return out, nil
	}
	var usage contract.OwnersUsage
	if err := c.get(ctx, contract.InternalOwnersUsagePath(userIDs), &usage); err != nil {
		return nil, err
	}
	for _, id := range userIDs {
		out[id] = usage[strconv.FormatInt(id, 10)]
	}
	return out, nil
}

func (c *Client) VMsOf(ctx context.Context, userID int64) ([]contract.InternalVM, error) {
	vms := []contract.InternalVM{}
	if err := c.get(ctx, contract.InternalOwnerVMsPath(userID), &vms); err != nil {
		return nil, err
	}
	return vms, nil
}

// get decodes vm-service's 200 answer to path into dst; anything else is domain.ErrVMServiceDown.
func (c *Client) get(ctx context.Context, path string, dst any) error {
	answer, err := c.api.Get(ctx, path)
	if err != nil {
		return fmt.Errorf("%w: %v", domain.ErrVMServiceDown, err)
	}
	if answer.Status != http.StatusOK {
		return fmt.Errorf("%w: answered %d: %.200s", domain.ErrVMServiceDown, answer.Status, answer.Body)
	}
	if err := answer.Decode(dst); err != nil {
		return fmt.Errorf("%w: %v", domain.ErrVMServiceDown, err)
	}
	return nil
}
