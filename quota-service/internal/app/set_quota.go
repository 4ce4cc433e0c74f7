package app

import (
	"context"

	"limen/quota-service/internal/domain"
)

// SetQuota is an admin's change of a user's limits. Lowering a limit below what the user holds is
// allowed: it blocks further growth only.
type SetQuota struct {
	UserID int64
	Change domain.LimitsChange
}

// SetQuotaHandler checks the change before it asks whether the user exists, and sets the limits in
// one statement.
type SetQuotaHandler struct {
	Quotas Quotas
	Users  Users
}

func (h SetQuotaHandler) Handle(ctx context.Context, cmd SetQuota) (domain.Quota, error) {
	if err := cmd.Change.Validate(); err != nil {
		return domain.Quota{}, err
	}
	if _, err := existingQuota(ctx, h.Quotas, h.Users, cmd.UserID); err != nil {
		return domain.Quota{}, err
	}
	return h.Quotas.SetLimits(ctx, cmd.UserID, cmd.Change)
}
