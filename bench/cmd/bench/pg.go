package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"strconv"

	"github.com/jackc/pgx/v5"
)

// benchDB is the throwaway database of one run: created by an
// administrative role, owned by a role of its own that is neither a
// superuser nor exempt from row-level security, as on Neon, so the broker
// pays for its policies as it would in production.
type benchDB struct {
	adminURL  string
	name      string
	role      string
	brokerURL string // the broker's DATABASE_URL
	rawURL    string // the raw-INSERT ceiling's: the administrative role, which RLS does not bind
	adminDB   string // the administrative role on this database, for one connection
	version   string
}

const benchRole = "broker_bench"

func createBenchDB(ctx context.Context, adminURL string, pool int) (*benchDB, error) {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return nil, fmt.Errorf("connect to PostgreSQL at BENCH_DATABASE_URL/TEST_DATABASE_URL (an administrative role that may create roles and databases): %w", err)
	}
	defer conn.Close(ctx)
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	d := &benchDB{adminURL: adminURL, name: "broker_bench_" + hex.EncodeToString(suffix), role: benchRole}
	if err := conn.QueryRow(ctx, `SELECT version()`).Scan(&d.version); err != nil {
		return nil, fmt.Errorf("read server version: %w", err)
	}
	// A fresh password each run: works with trust and with password
	// authentication alike.
	pw := make([]byte, 16)
	_, _ = rand.Read(pw)
	password := hex.EncodeToString(pw)
	role := pgx.Identifier{d.role}.Sanitize()
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)`, d.role).Scan(&exists); err != nil {
		return nil, fmt.Errorf("look up role: %w", err)
	}
	verb := "CREATE"
	if exists {
		verb = "ALTER"
	}
	// Utility statements take no parameters; the password is hex.
	if _, err := conn.Exec(ctx, verb+" ROLE "+role+" LOGIN NOSUPERUSER NOBYPASSRLS PASSWORD '"+password+"'"); err != nil {
		return nil, fmt.Errorf("%s role %s: %w", verb, d.role, err)
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{d.name}.Sanitize()+" OWNER "+role); err != nil {
		return nil, fmt.Errorf("create database: %w", err)
	}
	if d.brokerURL, err = withDatabase(adminURL, d.name, d.role, password, pool); err != nil {
		return nil, err
	}
	if d.rawURL, err = withDatabase(adminURL, d.name, "", "", pool); err != nil {
		return nil, err
	}
	if d.adminDB, err = withDatabase(adminURL, d.name, "", "", 0); err != nil {
		return nil, err
	}
	return d, nil
}

// withDatabase returns adminURL pointed at database name, as user (when
// given), with a pool of pool connections (none: a URL for pgx.Connect).
func withDatabase(adminURL, name, user, password string, pool int) (string, error) {
	u, err := url.Parse(adminURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", fmt.Errorf("BENCH_DATABASE_URL must be a postgres:// URL")
	}
	u.Path = "/" + name
	if user != "" {
		u.User = url.UserPassword(user, password)
	}
	if pool > 0 {
		q := u.Query()
		q.Set("pool_max_conns", strconv.Itoa(pool))
		u.RawQuery = q.Encode()
	}
	return u.String(), nil
}

// drop removes the database, ending any connection left to it.
func (d *benchDB) drop(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, d.adminURL)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{d.name}.Sanitize()+" WITH (FORCE)")
	return err
}

// reset empties the files table and checkpoints, so every save run starts
// from the same table and no checkpoint left over from the previous run
// lands in the next one.
func (d *benchDB) reset(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, d.adminDB)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "TRUNCATE files"); err != nil {
		return fmt.Errorf("truncate files: %w", err)
	}
	if _, err := conn.Exec(ctx, "CHECKPOINT"); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	return nil
}

// rows counts the records in files, to check that a run stored what it
// says it stored.
func (d *benchDB) rows(ctx context.Context) (int64, error) {
	conn, err := pgx.Connect(ctx, d.adminDB)
	if err != nil {
		return 0, err
	}
	defer conn.Close(ctx)
	var n int64
	err = conn.QueryRow(ctx, "SELECT count(*) FROM files").Scan(&n)
	return n, err
}
