package app

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"strings"

	"limen/media-service/internal/domain"
)

// UploadISO streams an image into the library (admin only). The SHA-256 is computed on the way
// through, so the caller can compare it with the distribution's checksum; a client that announced
// one has the upload refused (and nothing stored) when the bytes that arrived hash differently.
type UploadISO struct {
	Library  Library
	MaxBytes int64
	// MaxLabel is MaxBytes as people read it, for the 413 message.
	MaxLabel string
}

// Handle stores size bytes of body as name. announced is the SHA-256 the client sent (hex, any
// case), "" for none.
func (uc UploadISO) Handle(ctx context.Context, name string, size int64, body io.Reader, announced string) (domain.ISO, string, error) {
	if err := domain.ValidateISOName(name); err != nil {
		return domain.ISO{}, "", err
	}
	if size > uc.MaxBytes {
		return domain.ISO{}, "", domain.UploadTooLarge(uc.MaxLabel)
	}
	announced = strings.ToLower(announced)
	if b, err := hex.DecodeString(announced); announced != "" && (err != nil || len(b) != sha256.Size) {
		return domain.ISO{}, "", domain.Invalid("Checksum must be a SHA-256: 64 hexadecimal digits")
	}
	hash := sha256.New()
	var sum string
	// The library calls check once the last byte is stored and before the file gets its name.
	check := func() error {
		sum = hex.EncodeToString(hash.Sum(nil))
		if announced != "" && sum != announced {
			return domain.ChecksumMismatch(announced, sum)
		}
		return nil
	}
	iso, err := uc.Library.Upload(ctx, name, size, io.TeeReader(body, hash), check)
	if err != nil {
		return domain.ISO{}, "", hypervisorError(err)
	}
	if sum == "" { // a library that did not call check
		sum = hex.EncodeToString(hash.Sum(nil))
	}
	return iso, sum, nil
}
