// Package defaultquota gives every user the limits from configuration (LIMEN_QUOTA_MAX_VMS, _CPU and
// _MEMORY), standing in for per-user limits until quota-service keeps them.
package defaultquota

import (
	"context"

	"limen/vm-service/internal/domain"
)

// Limits implements app.Quotas with the same limits for everyone.
type Limits domain.Limits

func (l Limits) LimitsFor(context.Context, int64) (domain.Limits, error) {
	return domain.Limits(l), nil
}
