package httpapi

import (
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
)

// CORS for browsers on the origins of CORS_ORIGINS only. Written here
// rather than taken from Echo's middleware, whose empty origin list means
// "*" and which answers every OPTIONS as a preflight: with CORS_ORIGINS
// unset the broker must send no CORS header at all.
const (
	corsAllowMethods = "GET, POST, DELETE, OPTIONS"
	// The headers the API reads. Content-Type is listed because
	// application/json and multipart bodies with a boundary are not all
	// "simple" to every browser.
	corsAllowHeaders = "Authorization, Content-Type, X-Request-ID"
	// What a page may read of an answer beyond the safelisted headers:
	// the id to quote in a bug report, when to retry, why a token failed.
	corsExposeHeaders = "X-Request-ID, Retry-After, WWW-Authenticate"
	// How long a browser may reuse a preflight answer.
	corsMaxAge = "600"
)

// corsSkipPrefix is left alone: the emulator that `broker dev` mounts there
// answers CORS as the real providers do, for any origin.
const corsSkipPrefix = "/emulator/"

// cors returns the middleware for the allowed origins ("*" allows any), or
// nil when there are none.
func cors(origins []string) echo.MiddlewareFunc {
	if len(origins) == 0 {
		return nil
	}
	allowed := make(map[string]bool, len(origins))
	for _, o := range origins {
		allowed[strings.TrimRight(o, "/")] = true
	}
	allowAny := allowed["*"]
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			req := c.Request()
			if strings.HasPrefix(req.URL.Path, corsSkipPrefix) {
				return next(c)
			}
			h := c.Response().Header()
			// The answer depends on Origin whether or not it is allowed,
			// so a shared cache must not hand one origin's answer to
			// another.
			h.Add(echo.HeaderVary, echo.HeaderOrigin)
			origin := req.Header.Get(echo.HeaderOrigin)
			preflight := req.Method == http.MethodOptions && origin != "" &&
				req.Header.Get(echo.HeaderAccessControlRequestMethod) != ""
			if origin == "" || !(allowAny || allowed[origin]) {
				if preflight {
					// Answered, but without permission: the browser
					// refuses the real request.
					return c.NoContent(http.StatusNoContent)
				}
				return next(c)
			}
			// The origin itself rather than "*": correct for either, and
			// the same answer whatever CORS_ORIGINS holds.
			h.Set(echo.HeaderAccessControlAllowOrigin, origin)
			if preflight {
				h.Add(echo.HeaderVary, echo.HeaderAccessControlRequestMethod)
				h.Add(echo.HeaderVary, echo.HeaderAccessControlRequestHeaders)
				h.Set(echo.HeaderAccessControlAllowMethods, corsAllowMethods)
				h.Set(echo.HeaderAccessControlAllowHeaders, corsAllowHeaders)
				h.Set(echo.HeaderAccessControlMaxAge, corsMaxAge)
				return c.NoContent(http.StatusNoContent)
			}
			h.Set(echo.HeaderAccessControlExposeHeaders, corsExposeHeaders)
			return next(c)
		}
	}
}
