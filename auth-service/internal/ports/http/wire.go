package http

import (
	"time"

	"limen/auth-service/internal/domain"
	"limen/libs/contract"
)

// Request and response bodies (docs/openapi.yaml), kept apart from domain types.

type credentialsRequest struct {
	Username string `json:"username" validate:"required"`
	Password string `json:"password" validate:"required"`
}

type refreshRequest struct {
	RefreshToken string `json:"refresh_token"`
}

type approveRequest struct {
	Approved *bool `json:"approved"`
}

type sessionRequest struct {
	AccessToken  string `json:"access_token" validate:"required"`
	RefreshToken string `json:"refresh_token"`
}

type roleRequest struct {
	Role string `json:"role" validate:"required"`
}

type userResponse struct {
	ID        int64     `json:"id"`
	UUID      string    `json:"uuid"`
	Username  string    `json:"username"`
	Role      string    `json:"role"`
	Approved  bool      `json:"approved"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

type sessionResponse struct {
	Token            string       `json:"token"`
	AccessToken      string       `json:"access_token"`
	TokenType        string       `json:"token_type"`
	ExpiresAt        time.Time    `json:"expires_at"`
	ExpiresIn        int64        `json:"expires_in"`
	RefreshToken     string       `json:"refresh_token"`
	RefreshExpiresAt time.Time    `json:"refresh_expires_at"`
	User             userResponse `json:"user"`
}

// vmUsageResponse is what a user's VMs take; left out (nil) when vm-service could not say.
type vmUsageResponse struct {
	VMCount     int `json:"vm_count"`
	TotalCPU    int `json:"total_cpu"`
	TotalMemory int `json:"total_memory"`
}

type adminUserResponse struct {
	userResponse
	*vmUsageResponse
}

type adminUserDetailResponse struct {
	adminUserResponse
	VMs *[]contract.InternalVM `json:"vms,omitempty"`
}

type sessionUserResponse struct {
	ID       int64  `json:"id"`
	Username string `json:"username"`
	Role     string `json:"role"`
	Approved bool   `json:"approved"`
}

type sessionStateResponse struct {
	Valid     bool                `json:"valid"`
	Message   string              `json:"message,omitempty"`
	CSRFToken string              `json:"csrf_token,omitempty"`
	User      sessionUserResponse `json:"user"`
}

func toUserResponse(u *domain.User) userResponse {
	return userResponse{ID: u.ID, UUID: u.UUID.String(), Username: u.Username, Role: string(u.Role),
		Approved: u.Approved, CreatedAt: u.CreatedAt, UpdatedAt: u.UpdatedAt}
}

func toVMUsage(u contract.OwnerUsage) *vmUsageResponse {
	return &vmUsageResponse{VMCount: u.VMs, TotalCPU: u.CPU, TotalMemory: u.Memory}
}

func toSessionUser(u *domain.User) sessionUserResponse {
	return sessionUserResponse{ID: u.ID, Username: u.Username, Role: string(u.Role), Approved: u.Approved}
}

func toSessionResponse(s *domain.Session, now time.Time) sessionResponse {
	return sessionResponse{
		Token: s.AccessToken, AccessToken: s.AccessToken, TokenType: "Bearer",
		ExpiresAt: s.AccessExpiresAt, ExpiresIn: int64(s.AccessExpiresAt.Sub(now).Seconds()),
		RefreshToken: s.RefreshToken, RefreshExpiresAt: s.RefreshExpiresAt,
		User: toUserResponse(s.User),
	}
}
