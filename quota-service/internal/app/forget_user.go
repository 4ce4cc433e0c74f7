package app

import "context"

// ForgetUser says that auth-service deleted a user.
type ForgetUser struct {
	UserID int64
}

// ForgetUserHandler removes the user's quota with everything counted in it.
type ForgetUserHandler struct {
	Upkeep Upkeep
}

func (h ForgetUserHandler) Handle(ctx context.Context, cmd ForgetUser) error {
	return h.Upkeep.ForgetUser(ctx, cmd.UserID)
}
