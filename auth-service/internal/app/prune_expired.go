package app

import (
	"context"
	"errors"
	"time"
)

// Expiring is a table whose rows stop mattering at some time.
type Expiring interface {
	// PruneExpired deletes the rows that stopped mattering before cutoff and says how many.
	PruneExpired(ctx context.Context, cutoff time.Time) (int64, error)
}

// PruneExpired asks to delete what stopped mattering by now.
type PruneExpired struct{}

// Pruned is how many rows PruneExpiredHandler deleted.
type Pruned struct {
	RefreshTokens int64
	Counters      int64
}

// PruneExpiredHandler keeps refresh tokens and throttle counters from growing forever.
type PruneExpiredHandler struct {
	Tokens   Expiring
	Counters Expiring
	// LongestWindow is the longest throttle window (login lockout, registration window).
	LongestWindow time.Duration
	Now           Clock
}

func (h PruneExpiredHandler) Handle(ctx context.Context, _ PruneExpired) (Pruned, error) {
	now := h.Now()
	tokens, tokensErr := h.Tokens.PruneExpired(ctx, now)
	counters, countersErr := h.Counters.PruneExpired(ctx, now.Add(-h.LongestWindow))
	return Pruned{RefreshTokens: tokens, Counters: counters}, errors.Join(tokensErr, countersErr)
}
