// Package docs holds the broker's documents that the binary itself serves:
// the OpenAPI description of the HTTP API, embedded so that the file in the
// repository and the one at GET /openapi.yaml are the same bytes.
package docs

import _ "embed"

// OpenAPI is docs/openapi.yaml.
//
//go:embed openapi.yaml
var OpenAPI []byte
