// Package docs carries LIMEN's API document, so the gateway serves and the tests check the very file
// a reader opens here.
package docs

import _ "embed"

// OpenAPI is openapi.yaml: every route LIMEN's services answer, with its request and answer schemas.
//
//go:embed openapi.yaml
var OpenAPI []byte
