// Package migrations holds vm-service's schema (vm), applied at start-up.
package migrations

import "embed"

//go:embed *.sql
var FS embed.FS
