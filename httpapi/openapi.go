package httpapi

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/brokerdev/broker/docs"
)

// openAPIContentType is YAML's registered media type (RFC 9512); browsers
// show it as text and every OpenAPI tool reads it.
const openAPIContentType = "application/yaml; charset=utf-8"

// openAPI serves docs/openapi.yaml, embedded at build time, so the
// description always matches the binary answering.
func (s *server) openAPI(c echo.Context) error {
	// no-cache, not no-store: revalidating keeps a client from holding the
	// description of an older binary.
	c.Response().Header().Set(echo.HeaderCacheControl, "no-cache")
	return c.Blob(http.StatusOK, openAPIContentType, docs.OpenAPI)
}
