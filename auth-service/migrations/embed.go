// Package migrations holds auth-service's schema, applied at start-up by libs/pgdb.
package migrations

import "embed"

//go:embed *.sql
var FS embed.FS
