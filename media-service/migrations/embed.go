// Package migrations holds media-service's schema (media), applied at start-up.
package migrations

import "embed"

//go:embed *.sql
var FS embed.FS
