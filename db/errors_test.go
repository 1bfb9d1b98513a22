package db

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"testing/fstest"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/brokerdev/broker/metadata"
)

func TestWrapErr(t *testing.T) {
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	live := context.Background()
	dial := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	reset := &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}

	tests := []struct {
		name            string
		ctx             context.Context
		err             error
		wantUnavailable bool
		wantCanceled    bool
	}{
		{"dial refused", live, dial, true, false},
		{"connection reset", live, fmt.Errorf("read: %w", reset), true, false},
		{"unexpected EOF", live, fmt.Errorf("receive message: %w", io.ErrUnexpectedEOF), true, false},
		{"deadline waiting for a connection", live, fmt.Errorf("acquire: %w", context.DeadlineExceeded), true, false},
		{"admin shutdown", live, &pgconn.PgError{Code: "57P01"}, true, false},
		{"crash shutdown", live, &pgconn.PgError{Code: "57P02"}, true, false},
		{"cannot connect now", live, &pgconn.PgError{Code: "57P03"}, true, false},
		{"connection failure", live, &pgconn.PgError{Code: "08006"}, true, false},
		{"too many connections", live, &pgconn.PgError{Code: "53300"}, true, false},
		{"unique violation", live, &pgconn.PgError{Code: "23505"}, false, false},
		{"check violation", live, &pgconn.PgError{Code: "23514"}, false, false},
		{"statement timeout", live, &pgconn.PgError{Code: "57014"}, false, false},
		{"plain bug", live, errors.New("cannot scan"), false, false},
		{"canceled", live, fmt.Errorf("query: %w", context.Canceled), false, true},
		// pgx may surface a cancellation as the broken read it caused.
		{"canceled context, broken read", canceled, reset, false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := wrapErr(tc.ctx, "op", tc.err)
			if !errors.Is(got, tc.err) {
				t.Errorf("%v does not wrap %v", got, tc.err)
			}
			if u := errors.Is(got, metadata.ErrUnavailable); u != tc.wantUnavailable {
				t.Errorf("unavailable = %v, want %v (%v)", u, tc.wantUnavailable, got)
			}
			if c := errors.Is(got, context.Canceled); c != tc.wantCanceled {
				t.Errorf("canceled = %v, want %v (%v)", c, tc.wantCanceled, got)
			}
		})
	}
	if wrapErr(live, "op", nil) != nil {
		t.Error("wrapErr(nil) != nil")
	}
}

func TestLoadMigrations(t *testing.T) {
	ms, err := loadMigrations(migrationFiles, "migrations/postgres")
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 || ms[0].version != 1 || ms[0].name != "0001_files" {
		t.Fatalf("embedded migrations start with %+v", ms[0])
	}
	for i := 1; i < len(ms); i++ {
		if ms[i].version <= ms[i-1].version {
			t.Errorf("migrations out of order: %s after %s", ms[i].name, ms[i-1].name)
		}
	}

	sorted, err := loadMigrations(fstest.MapFS{
		"m/0010_later.sql": {Data: []byte("SELECT 2")},
		"m/0002_first.sql": {Data: []byte("SELECT 1")},
	}, "m")
	if err != nil || len(sorted) != 2 || sorted[0].name != "0002_first" || sorted[1].version != 10 {
		t.Errorf("loadMigrations sorted = %+v, %v", sorted, err)
	}

	for name, fsys := range map[string]fstest.MapFS{
		"bad name":          {"m/1_x.sql": {}},
		"not sql":           {"m/0001_x.txt": {}},
		"duplicate version": {"m/0001_a.sql": {}, "m/0001_b.sql": {}},
	} {
		if _, err := loadMigrations(fsys, "m"); err == nil {
			t.Errorf("%s: loadMigrations accepted it", name)
		}
	}
}
