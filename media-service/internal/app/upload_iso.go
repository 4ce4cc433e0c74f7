package app

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"strings"

	"limen/media-service/internal/domain"
)

// UploadISO asks to store Size bytes of Body as the library's ISO called Name. AnnouncedSHA256 is the
// SHA-256 the client sent (hex, any case), "" for none.
type UploadISO struct {
	Name            string
	Size            int64
	Body            io.Reader
	AnnouncedSHA256 string
}

// UploadedISO is the ISO stored and the SHA-256 of the bytes that arrived (hex).
type UploadedISO struct {
	ISO    domain.ISO
	SHA256 string
}

// UploadISOHandler streams an image into the library (admin only). The SHA-256 is computed on the way
// through, so the caller can compare it with the distribution's checksum; a client that announced
// one has the upload refused (and nothing stored) when the bytes that arrived hash differently.
type UploadISOHandler struct {
	Library  Library
	MaxBytes int64
	// MaxLabel is MaxBytes as people read it, for the 413 message.
	MaxLabel string
}

func (h UploadISOHandler) Handle(ctx context.Context, cmd UploadISO) (UploadedISO, error) {
	if err := domain.ValidateISOName(cmd.Name); err != nil {
		return UploadedISO{}, err
	}
	if cmd.Size > h.MaxBytes {
		return UploadedISO{}, domain.UploadTooLarge(h.MaxLabel)
	}
	announced := strings.ToLower(cmd.AnnouncedSHA256)
	if b, err := hex.DecodeString(announced); announced != "" && (err != nil || len(b) != sha256.Size) {
		return UploadedISO{}, domain.Invalid("Checksum must be a SHA-256: 64 hexadecimal digits")
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
	iso, err := h.Library.Upload(ctx, cmd.Name, cmd.Size, io.TeeReader(cmd.Body, hash), check)
	if err != nil {
		return UploadedISO{}, hypervisorError(err)
	}
	if sum == "" { // a library that did not call check
		sum = hex.EncodeToString(hash.Sum(nil))
	}
	return UploadedISO{ISO: iso, SHA256: sum}, nil
}
