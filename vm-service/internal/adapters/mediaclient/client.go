// Package mediaclient asks media-service, which owns every VM's CD-ROM drive, to change it.
package mediaclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"

	"limen/libs/contract"
	"limen/libs/failure"
	"limen/vm-service/internal/domain"
)

// Timeout bounds one call: media-service waits up to 15 s for another change of the same drive and
// a few seconds for a tray the guest holds shut.
const Timeout = 30 * time.Second

// Client implements app.Media over media-service's contract.InternalEjectRoute.
type Client struct {
	base  string
	token string
	http  *http.Client
}

// New talks to media-service at base, presenting the shared internal token.
func New(base, token string) *Client {
	return &Client{base: base, token: token, http: &http.Client{Timeout: Timeout}}
}

// Eject answers nil once media-service emptied the drive. Its refusals keep their kind and message
// (the VM has no drive: 409); out of reach, or busy itself, it is domain.ErrMediaServiceDown or
// media-service's own 503 message.
func (c *Client) Eject(ctx context.Context, vm uuid.UUID) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+contract.InternalEjectPath(vm.String()), nil)
	if err != nil {
		return fmt.Errorf("%w: %v", domain.ErrMediaServiceDown, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	otel.GetTextMapPropagator().Inject(ctx, propagation.HeaderCarrier(req.Header))
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%w: %v", domain.ErrMediaServiceDown, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("%w: %v", domain.ErrMediaServiceDown, err)
	}
	if resp.StatusCode == http.StatusNoContent {
		return nil
	}
	var answer struct {
		Message string `json:"message"`
	}
	_ = json.Unmarshal(body, &answer)
	switch resp.StatusCode {
	case http.StatusNotFound:
		return domain.ErrVMNotFound
	case http.StatusConflict:
		if answer.Message != "" {
			return failure.New(failure.Conflict, answer.Message)
		}
	case http.StatusServiceUnavailable:
		if answer.Message != "" {
			return failure.New(failure.Unavailable, answer.Message)
		}
		return domain.ErrMediaServiceDown
	case http.StatusBadGateway, http.StatusGatewayTimeout:
		return domain.ErrMediaServiceDown
	case http.StatusUnauthorized:
		// Not the caller's fault, and no retry mends it: logged as the server's own fault.
		return errors.New("media-service refused the internal token: LIMEN_INTERNAL_TOKEN must be the same for vm-service and media-service")
	}
	return fmt.Errorf("media-service answered the eject with %d: %.200s", resp.StatusCode, body)
}
