// Package argon2 hashes passwords with argon2id (RFC 9106) in PHC string format.
package argon2

import (
	"context"

	"github.com/alexedwards/argon2id"
)

// Params are the argon2id cost settings.
type Params = argon2id.Params

// DefaultParams follow RFC 9106's second recommendation scaled for a 2-core host: 64 MiB, 1 pass,
// 2 lanes (the library's defaults). Stored hashes carry their params, so raising them later only
// affects new hashes.
var DefaultParams = *argon2id.DefaultParams

// Hasher implements app.PasswordHasher.
type Hasher struct {
	params Params
}

// New returns a hasher with the given cost.
func New(params Params) *Hasher { return &Hasher{params: params} }

// Hash runs to the end once started; Bounded decides whether it starts.
func (h *Hasher) Hash(_ context.Context, password string) (string, error) {
	return argon2id.CreateHash(password, &h.params)
}

// Verify compares in constant time.
func (h *Hasher) Verify(_ context.Context, password, hash string) (bool, error) {
	return argon2id.ComparePasswordAndHash(password, hash)
}
