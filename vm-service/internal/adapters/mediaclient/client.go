// Package mediaclient asks media-service, which owns every VM's CD-ROM drive, to change it.
package mediaclient

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/google/uuid"

	"limen/libs/contract"
	"limen/libs/failure"
	"limen/libs/internalapi"
	"limen/vm-service/internal/domain"
)

// Timeout bounds one call: media-service waits up to 15 s for another change of the same drive and
// a few seconds for a tray the guest holds shut.
const Timeout = 30 * time.Second

// Client implements app.Media over media-service's contract.InternalEjectRoute.
type Client struct {
	api *internalapi.Client
}

// New talks to media-service at base, presenting the shared internal token.
func New(base, token string) *Client {
	return &Client{api: internalapi.New(internalapi.Config{Base: base, Token: token, Timeout: Timeout})}
}

// Eject answers nil once media-service emptied the drive. Its refusals keep their kind and message
// (the VM has no drive: 409); out of reach, or busy itself, it is domain.ErrMediaServiceDown or
// media-service's own 503 message.
func (c *Client) Eject(ctx context.Context, vm uuid.UUID) error {
	answer, err := c.api.Post(ctx, contract.InternalEjectPath(vm.String()), nil)
	if err != nil {
		return fmt.Errorf("%w: %v", domain.ErrMediaServiceDown, err)
	}
	message := answer.Message()
	switch answer.Status {
	case http.StatusNoContent:
		return nil
	case http.StatusNotFound:
		return domain.ErrVMNotFound
	case http.StatusConflict:
		if message != "" {
			return failure.New(failure.Conflict, message)
		}
	case http.StatusServiceUnavailable:
		if message != "" {
			return failure.New(failure.Unavailable, message)
		}
		return domain.ErrMediaServiceDown
	case http.StatusBadGateway, http.StatusGatewayTimeout:
		return domain.ErrMediaServiceDown
	case http.StatusUnauthorized:
		// Not the caller's fault, and no retry mends it: logged as the server's own fault.
		return errors.New("media-service refused the internal token: LIMEN_INTERNAL_TOKEN must be the same for vm-service and media-service")
	}
	return fmt.Errorf("media-service answered the eject with %d: %.200s", answer.Status, answer.Body)
}
