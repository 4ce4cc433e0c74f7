// Package internalapi is one service calling another's internal API (the /internal routes of
// libs/contract): the shared internal token as a bearer, the caller's trace context, JSON in, and an
// answer read up to a bound. What an answer means stays with the adapter that asked.
package internalapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
)

// DefaultMaxAnswer bounds an answer unless the Config says otherwise: every internal answer but a
// list of VMs is a few hundred bytes.
const DefaultMaxAnswer = 1 << 20

// Config is where the peer is and how to call it.
type Config struct {
	// Base is the peer's URL without a path, e.g. http://127.0.0.1:8082.
	Base string
	// Token is LIMEN_INTERNAL_TOKEN, the same for every service.
	Token string
	// Timeout bounds a call whose context has no earlier deadline.
	Timeout time.Duration
	// MaxAnswer bounds an answer's body (DefaultMaxAnswer when 0); a longer one is an error.
	MaxAnswer int64
}

// Client calls one peer service.
type Client struct {
	cfg  Config
	http *http.Client
}

// New calls the peer cfg names.
func New(cfg Config) *Client {
	if cfg.MaxAnswer <= 0 {
		cfg.MaxAnswer = DefaultMaxAnswer
	}
	return &Client{cfg: cfg, http: &http.Client{Timeout: cfg.Timeout}}
}

// Answer is the peer's answer.
type Answer struct {
	Status int
	Body   []byte
}

// Message is the message of an error body ({"message": ...}), or "".
func (a Answer) Message() string {
	var body struct {
		Message string `json:"message"`
	}
	_ = json.Unmarshal(a.Body, &body)
	return body.Message
}

// Decode reads the body as JSON into dst.
func (a Answer) Decode(dst any) error {
	if err := json.Unmarshal(a.Body, dst); err != nil {
		return fmt.Errorf("answer %.200q: %w", a.Body, err)
	}
	return nil
}

// Get asks for path.
func (c *Client) Get(ctx context.Context, path string) (Answer, error) {
	return c.Do(ctx, http.MethodGet, path, nil)
}

// Post sends body as JSON to path, or nothing when body is nil.
func (c *Client) Post(ctx context.Context, path string, body any) (Answer, error) {
	return c.Do(ctx, http.MethodPost, path, body)
}

// Do sends body (JSON; none when nil) with method to path. The error is for no answer at all: the
// peer out of reach, the call timed out or cut short, or an answer over the bound; any status is an
// Answer.
func (c *Client) Do(ctx context.Context, method, path string, body any) (Answer, error) {
	var payload io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return Answer{}, err
		}
		payload = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.cfg.Base+path, payload)
	if err != nil {
		return Answer{}, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+c.cfg.Token)
	otel.GetTextMapPropagator().Inject(ctx, propagation.HeaderCarrier(req.Header))
	resp, err := c.http.Do(req)
	if err != nil {
		return Answer{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, c.cfg.MaxAnswer+1))
	if err != nil {
		return Answer{}, fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	if int64(len(raw)) > c.cfg.MaxAnswer {
		return Answer{}, fmt.Errorf("%s %s: answer over %d bytes", method, path, c.cfg.MaxAnswer)
	}
	return Answer{Status: resp.StatusCode, Body: raw}, nil
}
