package db

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/brokerdev/broker/metadata"
)

// wrapErr names the operation that failed and classifies the failure:
//
//   - the caller's context canceled (the client went away): passed through,
//     still matching context.Canceled, and not blamed on the database;
//   - the database could not be reached or dropped the connection (see
//     unreachable): wraps metadata.ErrUnavailable too, so the HTTP layer
//     answers 503 with Retry-After;
//   - anything else (constraint violations, bugs): wrapped as it is.
func wrapErr(ctx context.Context, op string, err error) error {
	return classifyErr(ctx, op, err, unreachable)
}

// classifyErr is wrapErr with the database's own test for "cannot be
// reached": each store (PostgreSQL, SQLite) knows its driver's errors, the
// rest of the classification is shared.
func classifyErr(ctx context.Context, op string, err error, unreachable func(error) bool) error {
	if err == nil {
		return nil
	}
	switch {
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("db: %s: %w", op, err)
	case errors.Is(ctx.Err(), context.Canceled):
		// The driver reported the cancellation as the broken connection
		// or interrupted statement it caused; keep both.
		return fmt.Errorf("db: %s: %w: %w", op, context.Canceled, err)
	case unreachable(err):
		return fmt.Errorf("db: %s: %w: %w", op, metadata.ErrUnavailable, err)
	default:
		return fmt.Errorf("db: %s: %w", op, err)
	}
}

// unreachable reports whether err means the database cannot serve us now,
// as opposed to refusing this statement. A deadline that runs out while
// waiting for a connection or an answer counts: the database did not answer
// in time, which is what 503 is for.
func unreachable(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return unavailableSQLState(pgErr.Code)
	}
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	return errors.As(err, &connectErr) ||
		errors.As(err, &netErr) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, context.DeadlineExceeded) ||
		pgconn.Timeout(err) ||
		// pgx's own verdict that the statement never reached the server,
		// as when the pool hands out a connection that has died.
		pgconn.SafeToRetry(err)
}

// unavailableSQLState picks the server errors that mean "not now" rather
// than "not this": class 08 (connection exception), the shutdown codes of
// class 57 (admin_shutdown, crash_shutdown, cannot_connect_now, which Neon
// also sends while a compute starts), and too_many_connections.
func unavailableSQLState(code string) bool {
	switch code {
	case "57P01", "57P02", "57P03", "53300":
		return true
	}
	return strings.HasPrefix(code, "08")
}
