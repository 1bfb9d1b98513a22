package httpapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/brokerdev/broker/apierror"
)

// Default per-request timeouts (Deps.ReadTimeout, WriteTimeout,
// StreamIdleTimeout). A JSON body is at most 1 MiB; the slowest JSON
// answer waits for a provider (15 s at most) and the database (10 s to
// connect) in turn.
const (
	defaultReadTimeout       = 60 * time.Second
	defaultWriteTimeout      = 60 * time.Second
	defaultStreamIdleTimeout = 60 * time.Second
)

// emulatorPrefix is where `broker dev` mounts the provider emulator, which
// takes the browser's file uploads itself.
const emulatorPrefix = "/emulator/"

// streaming reports whether the request carries a file: POST /upload, or
// anything for the emulator. Those have their own size limits, and must not
// be cut off by the server's read and write timeouts, which are sized for
// JSON requests.
func streaming(c echo.Context) bool {
	return c.Path() == routeUpload || strings.HasPrefix(c.Request().URL.Path, emulatorPrefix)
}

// limitBody bounds every request body but the streaming ones to
// JSONBodyLimit: a declared length over it is refused before anything is
// read, and a body that turns out longer (chunked) fails the handler's
// read, whose answer becomes 413 payload_too_large whatever the handler
// made of the failed read. Handlers with their own, equal limit (the JSON
// decoder's) agree; handlers without one (webhooks) are covered.
func (s *server) limitBody(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if streaming(c) {
			return next(c)
		}
		req := c.Request()
		if req.ContentLength > s.JSONBodyLimit {
			return bodyTooLarge(s.JSONBodyLimit)
		}
		if req.Body == nil || req.Body == http.NoBody {
			return next(c)
		}
		lim := &limitedBody{ReadCloser: req.Body, left: s.JSONBodyLimit}
		req.Body = lim
		err := next(c)
		if err != nil && lim.exceeded() {
			return bodyTooLarge(s.JSONBodyLimit)
		}
		return err
	}
}

func bodyTooLarge(limit int64) error {
	return apierror.New(apierror.CodePayloadTooLarge, "the request body is larger than the limit of %s", humanBytes(limit))
}

// errBodyTooLarge is what a read past the limit returns.
var errBodyTooLarge = errors.New("request body is larger than the limit")

// limitedBody lets left bytes through and fails the read that would go
// past them. Unlike http.MaxBytesReader it remembers that it tripped, so
// limitBody can tell the cause of the handler's error.
type limitedBody struct {
	io.ReadCloser
	mu      sync.Mutex
	left    int64
	tripped bool
}

func (b *limitedBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.tripped {
		return 0, errBodyTooLarge
	}
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.ReadCloser.Read(p)
	if int64(n) > b.left {
		b.tripped = true
		n = int(b.left)
		b.left = 0
		return n, errBodyTooLarge
	}
	b.left -= int64(n)
	return n, err
}

func (b *limitedBody) exceeded() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.tripped
}

// deadlines bounds how long a request may take to arrive and to be
// answered, per route: the server's own read and write timeouts are one
// size for every request, and the size that suits JSON would cut off a
// large upload. (http.Server's ReadTimeout/WriteTimeout stay unset; see
// cmd/broker/listen.go.)
//
// JSON requests get ReadTimeout for the body and WriteTimeout for the
// answer. Streaming requests get no write deadline, and a read deadline
// that moves forward as bytes arrive: an upload may take as long as it
// needs while data flows, and one that stalls is cut after
// StreamIdleTimeout. Their answer is a small JSON body written once the
// file went through, and everything the handler waits for meanwhile (the
// provider, the database) has its own timeout.
func (s *server) deadlines(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		// Errors mean the writer has no connection to set deadlines on
		// (a test's recorder); then there is nothing to bound.
		rc := http.NewResponseController(c.Response())
		now := time.Now()
		if !streaming(c) {
			// The read deadline must not end before the write deadline:
			// once the body is read, net/http keeps reading the connection
			// to notice a client going away, and a read deadline passing
			// then cancels the request's context.
			_ = rc.SetReadDeadline(now.Add(max(s.ReadTimeout, s.WriteTimeout)))
			_ = rc.SetWriteDeadline(now.Add(s.WriteTimeout))
			// Connection deadlines end the connection, not the work: a
			// database or provider call that hangs keeps the handler past
			// them, and its 503 or 502 can then no longer be written. The
			// context's own deadline, a little earlier, makes such a call
			// give up while the answer can still go out.
			ctx, cancel := context.WithTimeout(c.Request().Context(), s.WriteTimeout-min(s.WriteTimeout/10, time.Second))
			defer cancel()
			c.SetRequest(c.Request().WithContext(ctx))
			return next(c)
		}
		_ = rc.SetWriteDeadline(time.Time{})
		req := c.Request()
		if req.Body == nil || req.Body == http.NoBody {
			_ = rc.SetReadDeadline(time.Time{})
			return next(c)
		}
		body := newIdleDeadlineBody(req.Body, rc, s.StreamIdleTimeout, now)
		defer body.release()
		req.Body = body
		err := next(c)
		if err != nil && body.stalled() {
			// net/http cancels the request's context when a read fails,
			// so the handler may well have blamed the provider it was
			// streaming to; the cause was the client.
			return apierror.Wrap(apierror.CodeInvalidRequest, err, "the upload sent no data for %s and was cut off", s.StreamIdleTimeout)
		}
		return err
	}
}

// idleDeadlineBody keeps the connection's read deadline idle ahead of the
// last read that brought data, and lifts it once the body has ended: from
// then on the connection is only read to notice the client leaving, which
// must not time out while the handler waits for the provider.
//
// A reader may outlive the handler (an upload abandoned mid-stream leaves
// the provider client's copier in a Read), so the deadline is moved under
// a lock and never once release has been called: by then the connection,
// and Echo's pooled response that reaches it, belong to someone else.
type idleDeadlineBody struct {
	io.ReadCloser
	idle     time.Duration
	timedOut atomic.Bool

	mu       sync.Mutex
	rc       *http.ResponseController // nil once released
	extended time.Time
}

func newIdleDeadlineBody(body io.ReadCloser, rc *http.ResponseController, idle time.Duration, now time.Time) *idleDeadlineBody {
	b := &idleDeadlineBody{ReadCloser: body, rc: rc, idle: idle}
	b.setDeadline(now, false)
	return b
}

// stalled reports whether a read ran into the idle deadline.
func (b *idleDeadlineBody) stalled() bool { return b.timedOut.Load() }

// release stops all further deadline changes; the handler has returned.
func (b *idleDeadlineBody) release() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.rc = nil
}

func (b *idleDeadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	switch {
	case err == io.EOF:
		b.setDeadline(time.Time{}, false)
	case errors.Is(err, os.ErrDeadlineExceeded):
		b.timedOut.Store(true)
		// A stalled client, not a broken server: handlers treat an
		// unexpected end of the body as the client's fault (400).
		return n, fmt.Errorf("%w: no data for %s: %w", io.ErrUnexpectedEOF, b.idle, err)
	case n > 0:
		b.setDeadline(time.Now(), true)
	}
	return n, err
}

// setDeadline moves the read deadline to idle after now, or lifts it when
// now is zero. With lazy it moves it only once an eighth of the window has
// passed since the last move: moving it on every read of a large file is
// needless work, and the allowance stays within 12.5% of idle.
func (b *idleDeadlineBody) setDeadline(now time.Time, lazy bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.rc == nil {
		return
	}
	if now.IsZero() {
		_ = b.rc.SetReadDeadline(time.Time{})
		return
	}
	if lazy && now.Sub(b.extended) <= b.idle/8 {
		return
	}
	b.extended = now
	_ = b.rc.SetReadDeadline(now.Add(b.idle))
}
