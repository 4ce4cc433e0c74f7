package app

import (
	"context"

	"limen/quota-service/internal/domain"
)

// GetQuota asks for a user's quota and usage: the caller's own when UserID is 0 or theirs, another
// user's for an admin only.
type GetQuota struct {
	Caller Caller
	UserID int64
}

// GetQuotaHandler answers from the store; an admin naming a user it has no quota for yet learns from
// auth-service whether that user exists.
type GetQuotaHandler struct {
	Quotas Quotas
	Users  Users
}

func (h GetQuotaHandler) Handle(ctx context.Context, q GetQuota) (domain.Quota, error) {
	if q.UserID == 0 || q.UserID == q.Caller.UserID {
		// The caller's token names a user that exists (a deleted user's tokens are refused).
		return h.Quotas.Quota(ctx, q.Caller.UserID)
	}
	if !q.Caller.Admin {
		return domain.Quota{}, domain.ErrAdminRequired
	}
	return existingQuota(ctx, h.Quotas, h.Users, q.UserID)
}

// existingQuota is the quota of a user named by an admin: domain.ErrUserNotFound for a user
// auth-service does not know, made with the defaults for one it knows.
func existingQuota(ctx context.Context, quotas Quotas, users Users, userID int64) (domain.Quota, error) {
	if q, found, err := quotas.Find(ctx, userID); err != nil || found {
		return q, err
	}
	exists, err := users.Exists(ctx, userID)
	if err != nil {
		return domain.Quota{}, err
	}
	if !exists {
		return domain.Quota{}, domain.ErrUserNotFound
	}
	return quotas.Quota(ctx, userID)
}
