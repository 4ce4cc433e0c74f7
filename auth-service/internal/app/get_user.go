package app

import (
	"context"
	"errors"

	"limen/auth-service/internal/domain"
	"limen/libs/contract"
)

// GetUser asks for the account ID.
type GetUser struct {
	ID int64
}

// UserVMs lists a user's VMs (vm-service).
type UserVMs interface {
	// VMsOf fails with domain.ErrVMServiceDown when vm-service cannot say.
	VMsOf(ctx context.Context, userID int64) ([]contract.InternalVM, error)
}

// GetUserHandler shows one account to an admin, with its VMs. Without vm-service (VMs nil) nobody
// owns VMs; when vm-service cannot say, the account is shown without them, as in the list.
type GetUserHandler struct {
	Users Users
	VMs   UserVMs
}

// UserDetail is an account and its VMs; VMsKnown is false when vm-service could not say.
type UserDetail struct {
	User     *domain.User
	VMs      []contract.InternalVM
	VMsKnown bool
}

// Usage is what the VMs take, as the list counts it.
func (d UserDetail) Usage() contract.OwnerUsage {
	usage := contract.OwnerUsage{VMs: len(d.VMs)}
	for _, vm := range d.VMs {
		usage.CPU += vm.CPU
		usage.Memory += vm.Memory
	}
	return usage
}

func (h GetUserHandler) Handle(ctx context.Context, q GetUser) (UserDetail, error) {
	u, err := h.Users.ByID(ctx, q.ID)
	if err != nil {
		return UserDetail{}, err
	}
	detail := UserDetail{User: u, VMsKnown: true}
	if h.VMs == nil {
		return detail, nil
	}
	detail.VMs, err = h.VMs.VMsOf(ctx, q.ID)
	switch {
	case errors.Is(err, domain.ErrVMServiceDown):
		detail.VMsKnown = false
	case err != nil:
		return UserDetail{}, err
	}
	return detail, nil
}
