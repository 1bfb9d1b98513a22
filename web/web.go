// Package web serves the demo page: one static HTML file, embedded in the
// binary, whose short script is the example of how a single-page app uses
// the broker (sign, upload straight to the provider, save, list, delete).
// See docs/demo.md.
package web

import (
	_ "embed"
	"net/http"

	"github.com/labstack/echo/v4"
)

//go:embed index.html
var indexHTML []byte

// Options configures the demo page.
type Options struct {
	// DevToken, when set, is handed to the page by GET /demo/config.json so
	// it works without pasting a token. Anyone who can load the page gets
	// it, so only `broker dev` sets it.
	DevToken string
}

// config is the body of GET /demo/config.json.
type config struct {
	DevToken string `json:"dev_token,omitempty"`
}

// Register adds GET / (the page) and GET /demo/config.json to e. Neither
// needs a token: the page asks for one, and the config holds only what
// opts allows.
func Register(e *echo.Echo, opts Options) {
	e.GET("/", func(c echo.Context) error {
		h := c.Response().Header()
		// no-cache, not no-store: revalidating keeps a rebuilt binary's page
		// from being hidden behind a stale copy.
		h.Set(echo.HeaderCacheControl, "no-cache")
		h.Set(echo.HeaderXContentTypeOptions, "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		return c.HTMLBlob(http.StatusOK, indexHTML)
	})
	e.GET("/demo/config.json", func(c echo.Context) error {
		// The token must not linger in caches.
		c.Response().Header().Set(echo.HeaderCacheControl, "no-store")
		return c.JSON(http.StatusOK, config{DevToken: opts.DevToken})
	})
}
