package http

import (
	"time"

	"limen/media-service/internal/domain"
)

// Request and response bodies (docs/openapi.yaml), kept apart from domain types.

type mediaRequest struct {
	Action  *string `json:"action" validate:"required"`
	ISOPath string  `json:"iso_path"`
}

type mediaResponse struct {
	VMUUID    string `json:"vm_uuid"`
	MediaPath string `json:"media_path"`
	Attached  bool   `json:"attached"`
}

type attachResponse struct {
	Message string `json:"message"`
	VMUUID  string `json:"vm_uuid"`
	ISOPath string `json:"iso_path"`
}

type detachResponse struct {
	Message string `json:"message"`
	VMUUID  string `json:"vm_uuid"`
}

type isoResponse struct {
	Name     string    `json:"name"`
	Path     string    `json:"path"`
	Size     int64     `json:"size"`
	Modified time.Time `json:"modified"`
}

type isoListResponse struct {
	ISOs  []isoResponse `json:"isos"`
	Count int           `json:"count"`
}

type uploadResponse struct {
	Message string      `json:"message"`
	ISO     isoResponse `json:"iso"`
	SHA256  string      `json:"sha256"`
}

type deleteISOResponse struct {
	Message string `json:"message"`
	Name    string `json:"name"`
}

func toISOResponse(iso domain.ISO) isoResponse {
	return isoResponse{Name: iso.Name, Path: iso.Path, Size: iso.Size, Modified: iso.Modified.UTC()}
}
