package httpapi

import (
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/brokerdev/broker/auth"
)

// maxRequestIDLen bounds an incoming X-Request-ID. Trace and request ids
// in use (UUIDs, ULIDs, hex trace ids) are well under it; anything longer is
// more likely a mistake, or data that has no place in a log line.
const maxRequestIDLen = 64

// saneRequestID accepts the request id a proxy or client sent when it is a
// short run of letters, digits and - _ . : so it can be joined with the
// caller's own logs, and cannot smuggle line breaks, markup or a long blob
// (a token pasted into the wrong header) into the broker's.
func saneRequestID(id string) bool {
	if id == "" || len(id) > maxRequestIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '-', c == '_', c == '.', c == ':':
		default:
			return false
		}
	}
	return true
}

// requestID gives every request an id: the caller's X-Request-ID when it
// is sane, a fresh UUID otherwise. It is sent back as X-Request-ID and
// names the request in every log line about it.
func requestID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		id := c.Request().Header.Get(echo.HeaderXRequestID)
		if !saneRequestID(id) {
			id = uuid.NewString()
		}
		c.Response().Header().Set(echo.HeaderXRequestID, id)
		return next(c)
	}
}

// requestIDOf is the id requestID gave the request.
func requestIDOf(c echo.Context) string {
	return c.Response().Header().Get(echo.HeaderXRequestID)
}

// observe writes one structured log line per request and records the
// request's metrics. It runs the error handler itself, so the status it
// reports is the one the client got.
//
// The line names the route pattern, never the path, query string, headers
// or body: ids in paths, tokens in a mistaken ?access_token=, signatures and
// secrets all stay out of the logs.
func (s *server) observe(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		done := s.Metrics.started()
		defer done()
		if err := next(c); err != nil {
			c.Error(err)
		}
		elapsed := time.Since(start)
		status := c.Response().Status
		route := routeOf(c)
		s.Metrics.observeRequest(s, c, route, status, elapsed)

		level := slog.LevelInfo
		if status >= 500 {
			level = slog.LevelError
		}
		attrs := []slog.Attr{
			slog.String("request_id", requestIDOf(c)),
			slog.String("method", c.Request().Method),
			slog.String("route", route),
			slog.Int("status", status),
			slog.Int64("bytes_out", c.Response().Size),
			slog.Duration("duration", elapsed),
		}
		if user := auth.UserID(c); user != "" {
			attrs = append(attrs, slog.String("user", user))
		}
		s.Logger.LogAttrs(c.Request().Context(), level, "request", attrs...)
		return nil
	}
}

// routeOf is the route pattern that served the request, or "unmatched"
// when none did: metrics and logs are labelled by pattern, so neither
// grows with the paths clients make up.
func routeOf(c echo.Context) string {
	if p := c.Path(); p != "" {
		return p
	}
	return "unmatched"
}

func (s *server) logPanic(c echo.Context, err error, stack []byte) error {
	s.Logger.Error("panic", "request_id", requestIDOf(c), "route", routeOf(c), "error", err, "stack", string(stack))
	return err
}
