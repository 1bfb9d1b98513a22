// Package testdb gives each test its own empty PostgreSQL database on a real
// server, so database tests run against the real thing and in parallel.
//
// The server is the one TEST_DATABASE_URL names (an administrative URL of a
// role allowed to create databases), by default
// postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable. When nothing
// answers there, the package starts a throwaway cluster with the local
// initdb and pg_ctl, once per machine, and reuses it from then on. When
// neither is possible the test fails with instructions: a database test
// that skips silently proves nothing.
package testdb

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// DefaultAdminURL is used when TEST_DATABASE_URL is not set.
const DefaultAdminURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

const howToGetPostgres = `database tests need PostgreSQL. Either
  - run a server and point TEST_DATABASE_URL at a role that may create databases, e.g.
      docker run -d -p 5432:5432 -e POSTGRES_HOST_AUTH_METHOD=trust postgres:17
      export TEST_DATABASE_URL='postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable'
  - or install the server binaries (initdb, pg_ctl), e.g. apt-get install postgresql,
    brew install postgresql, and the tests start a private cluster themselves`

// The administrative URL is settled once per test binary: probing and
// possibly starting a cluster is too slow to repeat for every test.
var (
	adminOnce sync.Once
	adminURL  string
	adminErr  error
)

// PostgresURL creates a new, empty database for t and returns its URL. The
// database is dropped, with any connections still open to it, when t ends.
func PostgresURL(t testing.TB) string {
	t.Helper()
	adminOnce.Do(func() { adminURL, adminErr = resolveAdminURL() })
	if adminErr != nil {
		t.Fatalf("testdb: %v\n%s", adminErr, howToGetPostgres)
	}

	name := databaseName(t.Name())
	ident := pgx.Identifier{name}.Sanitize()
	if err := adminExec(adminURL, "CREATE DATABASE "+ident); err != nil {
		t.Fatalf("testdb: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		// FORCE ends connections a test leaked; without it the drop fails
		// and databases pile up on the server.
		if err := adminExec(adminURL, "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)"); err != nil {
			t.Errorf("testdb: drop database %s: %v", name, err)
		}
	})

	u, err := withDatabase(adminURL, name)
	if err != nil {
		t.Fatalf("testdb: %v", err)
	}
	return u
}

// resolveAdminURL returns the administrative URL of a server that answers:
// the configured one, or else the throwaway local cluster.
func resolveAdminURL() (string, error) {
	configured := os.Getenv("TEST_DATABASE_URL")
	if configured == "" {
		configured = DefaultAdminURL
	}
	err := ping(configured)
	if err == nil {
		return configured, nil
	}
	if !nothingAnswers(err) {
		// Something listens but refuses us (password, permissions):
		// starting another server would hide a configuration mistake.
		return "", fmt.Errorf("cannot use %s: %w", redact(configured), err)
	}
	local, startErr := startLocalCluster()
	if startErr != nil {
		return "", fmt.Errorf("nothing answers at %s (%v), and no local cluster could be started: %w", redact(configured), err, startErr)
	}
	return local, nil
}

func ping(rawURL string) error {
	return adminExec(rawURL, "SELECT 1")
}

// adminExec runs one statement on its own short-lived connection. CREATE and
// DROP DATABASE cannot run inside a transaction, and tests are few enough
// that a pool would only add state.
func adminExec(rawURL, sql string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg, err := pgx.ParseConfig(rawURL)
	if err != nil {
		return err
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 5 * time.Second
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	return err
}

// nothingAnswers tells a server that is not there from one that refuses.
func nothingAnswers(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// The server answered. 57P03 (starting up / shutting down) still
		// counts as an answer worth reporting rather than papering over.
		return false
	}
	var netErr net.Error
	return errors.As(err, &netErr) || errors.Is(err, context.DeadlineExceeded)
}

// databaseName is unique per call and readable in pg_stat_activity: a prefix,
// a slug of the test name, and random bits, within PostgreSQL's 63 bytes.
func databaseName(testName string) string {
	var slug strings.Builder
	for _, r := range strings.ToLower(testName) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			slug.WriteRune(r)
		default:
			slug.WriteByte('_')
		}
	}
	s := slug.String()
	if len(s) > 32 {
		s = s[:32]
	}
	random := make([]byte, 6)
	if _, err := rand.Read(random); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return "broker_test_" + s + "_" + hex.EncodeToString(random)
}

func withDatabase(rawURL, database string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", fmt.Errorf("TEST_DATABASE_URL must be a postgres:// URL, got %s", redact(rawURL))
	}
	u.Path = "/" + database
	u.RawPath = ""
	return u.String(), nil
}

// redact hides a password before a URL goes into a test log.
func redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
