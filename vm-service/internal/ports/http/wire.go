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

type actionResponse struct {
	Message string     `json:"message"`
	VM      app.VMView `json:"vm"`
}

type deleteResponse struct {
	Message string `json:"message"`
	VMUUID  string `json:"vm_uuid"`
}
