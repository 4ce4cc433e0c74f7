// Package quotaclient asks quota-service, which keeps every user's limits and usage, to hold, commit
// and release the growth of a VM change (contract.InternalReservationsRoute and the routes after it).
package quotaclient

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"limen/libs/contract"
	"limen/libs/failure"
	"limen/libs/internalapi"
	"limen/vm-service/internal/domain"
)

// Timeout bounds a reservation: it is one short transaction in quota-service, so a call still
// unanswered after it finds quota-service unwell, and the growth is refused.
const Timeout = 10 * time.Second

// SettleTimeout bounds a commit or release, shorter: nothing waits on their outcome (quota-service
// repairs a lost one from the VM events), but a delete answers only after its release was tried.
const SettleTimeout = 3 * time.Second

// Client implements app.Reservations over quota-service's internal API.
type Client struct {
	api *internalapi.Client
}

// New talks to quota-service at base, presenting the shared internal token.
func New(base, token string) *Client {
	return &Client{api: internalapi.New(internalapi.Config{Base: base, Token: token, Timeout: Timeout})}
}

// Reserve answers nil once quota-service holds the change (or held it already under the same key).
// Over quota: failure.Quota with quota-service's message as it is. The owner deleted meanwhile (404):
// failure.Forbidden with quota-service's message, since nothing may grow for an account that is gone
// and it is the account, not the VM asked about, that is missing. Out of reach or 5xx:
// domain.ErrQuotaServiceDown.
func (c *Client) Reserve(ctx context.Context, change domain.QuotaChange) error {
	status, message, err := c.post(ctx, contract.InternalReservationsRoute, contract.QuotaReserve{Key: change.Key,
		UserID: change.OwnerID, VMUUID: change.VM.String(), VMs: change.VMs, CPU: change.CPU, Memory: change.MemoryMiB})
	switch {
	case err != nil:
		return err
	case status == http.StatusCreated || status == http.StatusOK:
		return nil
	case status == http.StatusForbidden && message != "":
		return failure.New(failure.Quota, message)
	case status == http.StatusNotFound && message != "":
		return failure.New(failure.Forbidden, message)
	}
	return c.unexpected("reserve", status, message)
}

// Commit answers nil once quota-service counts the change as made, vm as written.
func (c *Client) Commit(ctx context.Context, key string, vm *domain.VM) error {
	ctx, cancel := context.WithTimeout(ctx, SettleTimeout)
	defer cancel()
	status, message, err := c.post(ctx, contract.InternalReservationCommitPath(key),
		contract.QuotaCommit{CPU: vm.CPU, Memory: vm.MemoryMiB, Version: vm.Version})
	if err != nil || status == http.StatusOK {
		return err
	}
	return c.unexpected("commit", status, message)
}

// Release answers nil once quota-service let go of the held change.
func (c *Client) Release(ctx context.Context, key string) error {
	ctx, cancel := context.WithTimeout(ctx, SettleTimeout)
	defer cancel()
	status, message, err := c.post(ctx, contract.InternalReservationReleasePath(key), nil)
	if err != nil || status == http.StatusOK {
		return err
	}
	return c.unexpected("release", status, message)
}

// ReleaseVM answers nil once quota-service freed the usage of vm, which is gone.
func (c *Client) ReleaseVM(ctx context.Context, vm *domain.VM) error {
	ctx, cancel := context.WithTimeout(ctx, SettleTimeout)
	defer cancel()
	status, message, err := c.post(ctx, contract.InternalQuotaVMReleasePath(vm.UUID.String()), contract.QuotaVMRelease{UserID: vm.OwnerID})
	if err != nil || status == http.StatusNoContent {
		return err
	}
	return c.unexpected("release of a VM", status, message)
}

// post sends body (none when nil) and answers the status and the message of an error body; no
// answer or a 5xx is domain.ErrQuotaServiceDown.
func (c *Client) post(ctx context.Context, path string, body any) (int, string, error) {
	answer, err := c.api.Post(ctx, path, body)
	if err != nil {
		return 0, "", fmt.Errorf("%w: %v", domain.ErrQuotaServiceDown, err)
	}
	if answer.Status >= http.StatusInternalServerError {
		return 0, "", fmt.Errorf("%w: quota-service answered %d: %.200s", domain.ErrQuotaServiceDown, answer.Status, answer.Body)
	}
	if answer.Status >= http.StatusBadRequest {
		return answer.Status, answer.Message(), nil
	}
	return answer.Status, "", nil
}

// unexpected is an answer vm-service's requests should never get: its own fault, not the caller's.
func (c *Client) unexpected(call string, status int, message string) error {
	if status == http.StatusUnauthorized {
		return errors.New("quota-service refused the internal token: LIMEN_INTERNAL_TOKEN must be the same for vm-service and quota-service")
	}
	return fmt.Errorf("quota-service answered the %s with %d: %s", call, status, message)
}
