package app

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"

	"limen/media-service/internal/domain"
)

// UploadISO streams an image into the library (admin only). The SHA-256 is computed on the way
// through, so the caller can compare it with the distribution's checksum.
type UploadISO struct {
	Library  Library
	MaxBytes int64
	// MaxLabel is MaxBytes as people read it, for the 413 message.
	MaxLabel string
}

func (uc UploadISO) Handle(ctx context.Context, name string, size int64, body io.Reader) (domain.ISO, string, error) {
	if err := domain.ValidateISOName(name); err != nil {
		return domain.ISO{}, "", err
	}
	if size > uc.MaxBytes {
		return domain.ISO{}, "", domain.UploadTooLarge(uc.MaxLabel)
	}
	hash := sha256.New()
	iso, err := uc.Library.Upload(ctx, name, size, io.TeeReader(body, hash))
	if err != nil {
		return domain.ISO{}, "", hypervisorError(err)
	}
	return iso, hex.EncodeToString(hash.Sum(nil)), nil
}
