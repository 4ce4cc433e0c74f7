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

// PruneExpired keeps refresh tokens and throttle counters from growing forever.
type PruneExpired struct {
	Tokens   Expiring
	Counters Expiring
	// LongestWindow is the longest throttle window (login lockout, registration window).
	LongestWindow time.Duration
	Now           Clock
}

func (uc PruneExpired) Handle(ctx context.Context) (tokens, counters int64, err error) {
	now := uc.Now()
	tokens, tokensErr := uc.Tokens.PruneExpired(ctx, now)
	counters, countersErr := uc.Counters.PruneExpired(ctx, now.Add(-uc.LongestWindow))
	return tokens, counters, errors.Join(tokensErr, countersErr)
}
