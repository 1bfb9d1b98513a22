package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"
)

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(strings.ToUpper(level)))
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l}))
}

// listenAndServe serves until ctx ends (SIGTERM/SIGINT), then stops taking
// new connections and lets the requests in flight finish.
func listenAndServe(ctx context.Context, addr string, h http.Handler, logger *slog.Logger, started func(addr string)) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	started(ln.Addr().String())
	return serveListener(ctx, ln, h, logger)
}

// shutdownGrace is how long requests in flight may take to finish after
// SIGTERM. It is below Kubernetes' default 30 s grace period, so the
// broker ends them itself rather than being killed; orchestrators that
// allow less (docker stop's 10 s) should be given more (stop_grace_period,
// terminationGracePeriodSeconds).
const shutdownGrace = 25 * time.Second

// Server-wide timeouts. The header timeout stops slow-header clients from
// holding connections; the idle timeout closes unused keep-alive
// connections. There is no ReadTimeout or WriteTimeout here on purpose:
// one value for every request would either be too short for a large
// upload or too long for a JSON call. The broker's HTTP layer sets them
// per request with http.ResponseController instead (httpapi/limits.go:
// 60 s for JSON requests, and for uploads a read deadline that moves as
// data arrives).
const (
	readHeaderTimeout = 10 * time.Second
	idleTimeout       = 120 * time.Second
	maxHeaderBytes    = 64 << 10
)

// serveListener is listenAndServe on a listener the caller opened: `broker
// dev` needs the real address (ADDR may say port 0) before it can wire the
// URLs that point back at itself.
//
// When ctx ends, the listener closes at once (new connections are
// refused), idle keep-alive connections are closed, and the requests in
// flight get shutdownGrace to finish; their connections close after their
// answer. It returns nil when everything finished in time, so the process
// exits 0.
func serveListener(ctx context.Context, ln net.Listener, h http.Handler, logger *slog.Logger) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	logger.Info("shutting down: finishing requests in flight", "grace", shutdownGrace.String())
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		// Out of time: cut what is left rather than hang.
		_ = srv.Close()
		return fmt.Errorf("shutdown: requests still in flight after %s were cut off: %w", shutdownGrace, err)
	}
	logger.Info("stopped: every request in flight finished")
	return nil
}
