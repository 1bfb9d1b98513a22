// Package httpapi is the broker's HTTP layer: routes, JSON decoding, the
// mapping of errors to the contract's bodies, and the middleware around them.
// It holds no business rules; those live in metadata.
package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/brokerdev/broker/auth"
	"github.com/brokerdev/broker/metadata"
)

// Deps is what the HTTP layer needs from the rest of the broker.
type Deps struct {
	Service *metadata.Service
	Auth    *auth.Verifier
	Logger  *slog.Logger
	// JSONBodyLimit bounds JSON request bodies (default 1 MiB).
	JSONBodyLimit int64
	// UploadMaxBytes bounds a file sent to POST /upload (default 100 MiB).
	UploadMaxBytes int64
	// Mount adds routes that live beside the API (emulator, demo page).
	Mount func(e *echo.Echo)
	// CORSOrigins are the browser origins allowed to call the API
	// (CORS_ORIGINS; "*" for any). Empty: no CORS headers at all.
	CORSOrigins []string
	// RateLimitPerMinute is each user's allowance of signatures, and
	// separately of saves (RATE_LIMIT_PER_MINUTE). 0: no limit.
	RateLimitPerMinute int
	// Metrics receives the HTTP layer's measurements and serves /metrics;
	// nil makes a registry of its own.
	Metrics *Metrics
	// ReadTimeout and WriteTimeout bound a JSON request's body and answer
	// (default 60 s each); StreamIdleTimeout is how long an upload may
	// stall (default 60 s). See deadlines in limits.go.
	ReadTimeout, WriteTimeout, StreamIdleTimeout time.Duration
	// Now is the rate limiter's clock; nil means time.Now.
	Now func() time.Time
}

type server struct {
	Deps
	limiter *rateLimiter // nil when RateLimitPerMinute is 0
}

// New builds the broker's Echo instance.
func New(d Deps) *echo.Echo {
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	if d.JSONBodyLimit <= 0 {
		d.JSONBodyLimit = 1 << 20
	}
	if d.UploadMaxBytes <= 0 {
		d.UploadMaxBytes = 100 << 20
	}
	if d.Metrics == nil {
		d.Metrics = NewMetrics()
	}
	for _, t := range []struct {
		v   *time.Duration
		def time.Duration
	}{{&d.ReadTimeout, defaultReadTimeout}, {&d.WriteTimeout, defaultWriteTimeout}, {&d.StreamIdleTimeout, defaultStreamIdleTimeout}} {
		if *t.v <= 0 {
			*t.v = t.def
		}
	}
	s := &server{Deps: d}
	if d.RateLimitPerMinute > 0 {
		s.limiter = newRateLimiter(d.RateLimitPerMinute, d.Now)
	}
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = s.handleError
	// Outermost first: every answer, a panic's and a preflight's included,
	// carries a request id and is logged and counted; deadlines and the
	// body limit apply before any handler reads.
	e.Use(requestID, s.observe)
	e.Use(middleware.RecoverWithConfig(middleware.RecoverConfig{DisableErrorHandler: false, LogErrorFunc: s.logPanic}))
	if mw := cors(d.CORSOrigins); mw != nil {
		e.Use(mw)
	}
	e.Use(s.deadlines, s.limitBody)

	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	e.GET("/metrics", s.metrics)
	e.GET("/openapi.yaml", s.openAPI)

	// Per-route rather than an Echo group: a group's middleware also runs
	// for unknown paths, which would turn every 404 into a 401.
	authed := s.Auth.Middleware()
	e.GET(routeGenerateSignature, s.generateSignature, authed, s.rateLimit(actionSign))
	e.POST(routeSaveMetadata, s.saveMetadata, authed, s.rateLimit(actionSave))
	e.GET("/files", s.listFiles, authed)
	e.GET("/files/:id", s.getFile, authed)
	e.DELETE("/files/:id", s.deleteFile, authed)
	e.POST(routeUpload, s.upload, authed, s.rateLimit(actionSave))

	// Signed by the provider over the raw body (webhooks.go), not by a JWT.
	e.POST("/webhooks/cloudinary", s.cloudinaryWebhook)
	e.POST("/webhooks/uploadcare", s.uploadcareWebhook)

	if d.Mount != nil {
		d.Mount(e)
	}
	return e
}

func (s *server) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]any{"success": true, "status": "ok"})
}

func (s *server) readyz(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
	defer cancel()
	if err := s.Service.Store.Ping(ctx); err != nil {
		return unavailable(err)
	}
	return c.JSON(http.StatusOK, map[string]any{"success": true, "status": "ready"})
}
