// Package migrations holds quota-service's schema (quota), applied at start-up.
package migrations

import "embed"

//go:embed *.sql
var FS embed.FS
