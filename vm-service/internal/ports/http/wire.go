package http

import "limen/vm-service/internal/app"

// Request and response bodies of the contract, kept apart from domain types.

type createRequest struct {
	Name   *string `json:"name" validate:"required"`
	CPU    *int    `json:"cpu" validate:"required"`
	Memory *int    `json:"memory" validate:"required"`
	OSType *string `json:"os_type" validate:"required"`
	Start  bool    `json:"start"`
}

type actionRequest struct {
	Action *string `json:"action" validate:"required"`
	CPU    *int    `json:"cpu"`
	Memory *int    `json:"memory"`
}

// actionResponse is the VM as GET shows it, with what was done (or is being done).
type actionResponse struct {
	app.VMView
	Message string `json:"message"`
}

type deleteResponse struct {
	Message string `json:"message"`
	VMUUID  string `json:"vm_uuid"`
}
