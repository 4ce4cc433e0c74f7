package http

import (
	"encoding/base64"
	"encoding/hex"
	"strings"

	"github.com/gofiber/fiber/v2"

	"limen/media-service/internal/domain"
)

// announcedSHA256 is the SHA-256 an upload's client announced for its body, in hex ("" for none),
// from any of the headers clients use for it: X-Checksum-SHA256 (hex), Digest (RFC 3230,
// "sha-256=<base64>") and Repr-Digest / Content-Digest (RFC 9530, "sha-256=:<base64>:"; an upload is
// sent without content coding, so both describe the same bytes). Headers that disagree are refused.
func announcedSHA256(c *fiber.Ctx) (string, error) {
	var found []string
	if v := strings.TrimSpace(c.Get("X-Checksum-SHA256")); v != "" {
		found = append(found, strings.ToLower(v))
	}
	for _, header := range []string{"Digest", "Repr-Digest", "Content-Digest"} {
		v := c.Get(header)
		if v == "" {
			continue
		}
		sum, ok, err := sha256Entry(header, v)
		if err != nil {
			return "", err
		}
		if ok {
			found = append(found, sum)
		}
	}
	for _, sum := range found[min(1, len(found)):] {
		if sum != found[0] {
			return "", domain.Invalid("Checksum headers disagree")
		}
	}
	if len(found) == 0 {
		return "", nil
	}
	return found[0], nil
}

// sha256Entry finds the sha-256 entry of a digest header's list; ok is false when it has none.
func sha256Entry(header, value string) (sum string, ok bool, err error) {
	for _, entry := range strings.Split(value, ",") {
		alg, encoded, _ := strings.Cut(strings.TrimSpace(entry), "=")
		if !strings.EqualFold(strings.TrimSpace(alg), "sha-256") {
			continue
		}
		encoded = strings.TrimSpace(encoded)
		if header != "Digest" { // RFC 9530: a byte sequence, :base64:
			if len(encoded) < 2 || encoded[0] != ':' || encoded[len(encoded)-1] != ':' {
				return "", false, domain.Invalid("Invalid " + header + " header")
			}
			encoded = encoded[1 : len(encoded)-1]
		}
		raw, derr := base64.StdEncoding.DecodeString(encoded)
		if derr != nil || len(raw) != 32 {
			return "", false, domain.Invalid("Invalid " + header + " header")
		}
		return hex.EncodeToString(raw), true, nil
	}
	return "", false, nil
}
