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
}

type server struct {
	Deps
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
	s := &server{Deps: d}
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = s.handleError
	e.Use(middleware.RequestIDWithConfig(middleware.RequestIDConfig{TargetHeader: echo.HeaderXRequestID}))
	e.Use(s.logRequests)
	e.Use(middleware.RecoverWithConfig(middleware.RecoverConfig{DisableErrorHandler: false, LogErrorFunc: s.logPanic}))

	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)

	// Per-route rather than an Echo group: a group's middleware also runs
	// for unknown paths, which would turn every 404 into a 401.
	authed := s.Auth.Middleware()
	e.GET("/generate-signature", s.generateSignature, authed)
	e.POST("/save-metadata", s.saveMetadata, authed)
	e.GET("/files", s.listFiles, authed)
	e.GET("/files/:id", s.getFile, authed)
	e.DELETE("/files/:id", s.deleteFile, authed)
	e.POST("/upload", s.upload, authed)

	if d.Mount != nil {
		d.Mount(e)
	}
	return e
}

func (s *server) logPanic(c echo.Context, err error, stack []byte) error {
	s.Logger.Error("panic", "request_id", c.Response().Header().Get(echo.HeaderXRequestID), "error", err, "stack", string(stack))
	return err
}

// logRequests writes one structured line per request. It logs the route
// pattern, never the query string or headers, so tokens and signatures stay
// out of the logs.
func (s *server) logRequests(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		if err != nil {
			c.Error(err)
		}
		status := c.Response().Status
		level := slog.LevelInfo
		if status >= 500 {
			level = slog.LevelError
		}
		s.Logger.LogAttrs(c.Request().Context(), level, "request",
			slog.String("request_id", c.Response().Header().Get(echo.HeaderXRequestID)),
			slog.String("method", c.Request().Method),
			slog.String("route", c.Path()),
			slog.Int("status", status),
			slog.Duration("duration", time.Since(start)),
			slog.String("user", auth.UserID(c)),
		)
		return nil
	}
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
