package contract

import "strconv"

// InternalUserRoute is auth-service's: it answers InternalUser for a user id, 404 for none.
const InternalUserRoute = InternalPrefix + "/users/:id"

// InternalUserPath is InternalUserRoute for a user id.
func InternalUserPath(userID int64) string {
	return InternalPrefix + "/users/" + strconv.FormatInt(userID, 10)
}

// InternalUser is what peer services learn about a user.
type InternalUser struct {
	ID       int64  `json:"id"`
	Username string `json:"username"`
	Role     string `json:"role"`
	Approved bool   `json:"approved"`
}
