package app

import (
	"context"

	"limen/quota-service/internal/domain"
)

// ListQuotas asks for one page of every user's quota and usage, by user id.
type ListQuotas struct {
	Limit  int
	Offset int
}

// QuotaPage is one page of quotas and how many there are in all.
type QuotaPage struct {
	Quotas []domain.Quota
	Total  int
}

// ListQuotasHandler lists the quotas the store keeps: every user who has had a VM, a reservation,
// a change of limits or a look at their quota. A user with none of these has the default limits and
// no usage, and appears once they do.
type ListQuotasHandler struct {
	Quotas Quotas
}

func (h ListQuotasHandler) Handle(ctx context.Context, q ListQuotas) (QuotaPage, error) {
	if err := domain.ValidPage(q.Limit, q.Offset); err != nil {
		return QuotaPage{}, err
	}
	quotas, total, err := h.Quotas.List(ctx, q.Limit, q.Offset)
	return QuotaPage{Quotas: quotas, Total: total}, err
}
