package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/google/uuid"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/brokerdev/broker/metadata"
)

// sqliteBusyTimeout is how long a statement waits for a lock another
// process holds (a second broker on the same file, the sqlite3 shell)
// before giving up with SQLITE_BUSY, which the store reports as
// ErrUnavailable. Inside one process writes never wait on each other at
// the SQLite level: they queue for the single writer connection instead.
const sqliteBusyTimeout = 5 * time.Second

// sqliteMaxReaders bounds the read connections. In WAL mode readers do not
// block the writer or each other, so a few let list and get requests run
// while an upload is being saved.
const sqliteMaxReaders = 4

// SQLite is the metadata.Store on an SQLite file, for `broker dev`: the
// same behaviour as Postgres (the storetest suite runs against both) on a
// pure-Go driver, so the binary needs neither cgo nor a database server.
//
// It holds two connection pools on one file in WAL mode: one writer
// connection, through which every write goes in turn, and a few readers.
// Serialising the writes in the process is what SQLite would do anyway
// (one writer at a time per file); doing it in Go means they queue instead
// of failing with SQLITE_BUSY.
type SQLite struct {
	write *sql.DB
	read  *sql.DB
}

var _ metadata.Store = (*SQLite)(nil)

// OpenSQLite opens (creating it, and its folder, if need be) the database
// file at path. ":memory:" gives a private in-memory database, for tests;
// it lives as long as the store. It does not migrate: see MigrateSQLite.
func OpenSQLite(ctx context.Context, path string) (*SQLite, error) {
	memory := path == ":memory:"
	if !memory {
		if dir := filepath.Dir(path); dir != "." {
			// 0700: the records name users; nobody else needs to read them.
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return nil, fmt.Errorf("db: create the folder of %s: %w", path, err)
			}
		}
	}
	params := url.Values{}
	params.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", sqliteBusyTimeout.Milliseconds()))
	params.Add("_pragma", "foreign_keys(1)")
	if !memory {
		// WAL lets readers run beside the writer; it is a property of the
		// file, so setting it on the writer is enough. synchronous=NORMAL
		// is the setting WAL is designed for: a power cut may lose the
		// last commits, never corrupt the file.
		params.Add("_pragma", "journal_mode(WAL)")
		params.Add("_pragma", "synchronous(NORMAL)")
	}
	// BEGIN IMMEDIATE takes the write lock at the start of a transaction,
	// so a read-then-write transaction cannot fail halfway with
	// SQLITE_BUSY when another process wrote in between.
	params.Set("_txlock", "immediate")
	write, err := sql.Open("sqlite", sqliteDSN(path, params))
	if err != nil {
		return nil, fmt.Errorf("db: open %s: %w", path, err)
	}
	write.SetMaxOpenConns(1)
	// A closed and reopened in-memory connection would be a new, empty
	// database; and a file's one writer is worth keeping open.
	write.SetMaxIdleConns(1)
	write.SetConnMaxLifetime(0)
	write.SetConnMaxIdleTime(0)
	s := &SQLite{write: write, read: write}
	if memory {
		return s, nil
	}
	// Open the writer first, so the file exists and is in WAL mode before
	// any reader looks at it.
	if err := write.PingContext(ctx); err != nil {
		write.Close()
		return nil, classifyErr(ctx, "open "+path, err, sqliteUnreachable)
	}
	readParams := url.Values{}
	readParams.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", sqliteBusyTimeout.Milliseconds()))
	readParams.Add("_pragma", "query_only(1)")
	read, err := sql.Open("sqlite", sqliteDSN(path, readParams))
	if err != nil {
		write.Close()
		return nil, fmt.Errorf("db: open %s: %w", path, err)
	}
	read.SetMaxOpenConns(sqliteMaxReaders)
	read.SetMaxIdleConns(sqliteMaxReaders)
	s.read = read
	return s, nil
}

// sqliteDSN builds the driver's data source name: an SQLite URI, so that
// a path holding '?', '#' or '%' is taken literally, followed by the
// driver's own parameters.
func sqliteDSN(path string, params url.Values) string {
	if path == ":memory:" {
		return ":memory:?" + params.Encode()
	}
	return "file:" + (&url.URL{Path: filepath.ToSlash(path)}).EscapedPath() + "?" + params.Encode()
}

// Close releases the connections.
func (s *SQLite) Close() {
	if s.read != s.write {
		s.read.Close()
	}
	s.write.Close()
}

// Ping checks that the file can be read.
func (s *SQLite) Ping(ctx context.Context) error {
	var one int
	return s.wrap(ctx, "ping", s.read.QueryRowContext(ctx, `SELECT 1`).Scan(&one))
}

// SQLite statements. fileColumns is shared with PostgreSQL; created_at is
// microseconds since the Unix epoch here (see migrations/sqlite/0001).
const (
	sqliteInsertFile = `INSERT INTO files (` + fileColumns + `)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
	ON CONFLICT (provider, provider_id) DO NOTHING`

	sqliteFileByAsset = `SELECT ` + fileColumns + ` FROM files
	WHERE provider = ? AND provider_id = ?`

	sqliteFileByID = `SELECT ` + fileColumns + ` FROM files
	WHERE id = ? AND user_id = ?`

	sqliteUserFileByAsset = `SELECT ` + fileColumns + ` FROM files
	WHERE user_id = ? AND provider = ? AND provider_id = ?`

	// As in PostgreSQL, the keyset condition is always there (the first
	// page starts after the largest possible position), so one statement
	// serves every page and files_user_created_at_idx bounds the scan.
	sqliteListFiles = `SELECT ` + fileColumns + ` FROM files
	WHERE user_id = ?1
	  AND (?2 = '' OR provider = ?2)
	  AND (?3 = '' OR resource_type = ?3)
	  AND (created_at, id) < (?4, ?5)
	ORDER BY created_at DESC, id DESC
	LIMIT ?6`

	sqliteDeleteFile = `DELETE FROM files WHERE id = ? AND user_id = ?`

	// Webhook deliveries (migrations/sqlite/0002); delivered_at is
	// microseconds since the Unix epoch.
	sqliteWebhookDelivered = `SELECT EXISTS (SELECT 1 FROM webhook_deliveries
	WHERE provider = ? AND body_sha256 = ?)`
	sqliteRecordWebhook = `INSERT INTO webhook_deliveries (provider, body_sha256, delivered_at)
	VALUES (?, ?, ?)
	ON CONFLICT (provider, body_sha256) DO NOTHING`
	sqlitePruneWebhooks = `DELETE FROM webhook_deliveries WHERE delivered_at < ?`
)

// SaveFile records f unless its asset is already recorded, in which case it
// returns the existing record, whoever owns it, with created=false.
//
// The insert and the look-up run in one IMMEDIATE transaction on the one
// writer connection: nothing can insert or delete the asset between them,
// in this process or another, so unlike PostgreSQL there is no retry.
func (s *SQLite) SaveFile(ctx context.Context, f metadata.File) (metadata.File, bool, error) {
	if f.ID == "" {
		id, err := uuid.NewV7()
		if err != nil {
			return metadata.File{}, false, fmt.Errorf("db: save file: new id: %w", err)
		}
		f.ID = id.String()
	} else {
		id, err := uuid.Parse(f.ID)
		if err != nil {
			return metadata.File{}, false, fmt.Errorf("db: save file: id %q is not a UUID: %w", f.ID, err)
		}
		// PostgreSQL's uuid type gives every spelling one form; text
		// must be told.
		f.ID = id.String()
	}
	// Microseconds, as PostgreSQL keeps them: every store answers alike.
	if f.CreatedAt.IsZero() {
		f.CreatedAt = time.Now()
	}
	f.CreatedAt = f.CreatedAt.UTC().Truncate(time.Microsecond)

	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return metadata.File{}, false, s.wrap(ctx, "save file", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	res, err := tx.ExecContext(ctx, sqliteInsertFile,
		f.ID, f.Provider, f.ProviderID, f.URL, f.ResourceType, f.UserID,
		f.Bytes, f.Format, f.MimeType, f.Width, f.Height, f.OriginalFilename, f.CreatedAt.UnixMicro())
	if err != nil {
		return metadata.File{}, false, s.wrap(ctx, "save file", err)
	}
	inserted, err := res.RowsAffected()
	if err != nil {
		return metadata.File{}, false, s.wrap(ctx, "save file", err)
	}
	stored, err := scanSQLiteFile(tx.QueryRowContext(ctx, sqliteFileByAsset, f.Provider, f.ProviderID))
	if err != nil {
		// Even sql.ErrNoRows is a bug here: the row was just inserted or
		// found to exist, under the write lock.
		return metadata.File{}, false, s.wrap(ctx, "save file: read the record back", err)
	}
	if err := tx.Commit(); err != nil {
		return metadata.File{}, false, s.wrap(ctx, "save file: commit", err)
	}
	return stored, inserted == 1, nil
}

// GetFile returns the user's file with this id, or metadata.ErrNotFound.
func (s *SQLite) GetFile(ctx context.Context, userID, id string) (metadata.File, error) {
	parsed, err := uuid.Parse(id)
	if err != nil {
		// No file has an id that is not a UUID.
		return metadata.File{}, metadata.ErrNotFound
	}
	return s.getOne(ctx, "get file", sqliteFileByID, parsed.String(), userID)
}

// GetByProviderID returns the user's file for this provider asset, or
// metadata.ErrNotFound.
func (s *SQLite) GetByProviderID(ctx context.Context, userID, provider, providerID string) (metadata.File, error) {
	return s.getOne(ctx, "get file by provider id", sqliteUserFileByAsset, userID, provider, providerID)
}

func (s *SQLite) getOne(ctx context.Context, op, query string, args ...any) (metadata.File, error) {
	f, err := scanSQLiteFile(s.read.QueryRowContext(ctx, query, args...))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return metadata.File{}, metadata.ErrNotFound
	case err != nil:
		return metadata.File{}, s.wrap(ctx, op, err)
	}
	return f, nil
}

// ListFiles returns up to q.Limit of the user's files, newest first
// (created_at, then id, descending), strictly after q.After.
func (s *SQLite) ListFiles(ctx context.Context, userID string, q metadata.ListQuery) ([]metadata.File, error) {
	if q.Limit < 1 {
		return nil, fmt.Errorf("db: list files: limit must be at least 1, got %d", q.Limit)
	}
	// The position before every row: no created_at reaches MaxInt64.
	afterMicros, afterID := int64(math.MaxInt64), uuid.Max.String()
	if !q.After.IsZero() {
		id, err := uuid.Parse(q.After.ID)
		if err != nil {
			return nil, fmt.Errorf("db: list files: cursor id %q is not a UUID: %w", q.After.ID, err)
		}
		afterMicros, afterID = q.After.CreatedAt.UnixMicro(), id.String()
	}
	rows, err := s.read.QueryContext(ctx, sqliteListFiles, userID, q.Provider, q.ResourceType, afterMicros, afterID, q.Limit)
	if err != nil {
		return nil, s.wrap(ctx, "list files", err)
	}
	defer rows.Close()
	files := []metadata.File{}
	for rows.Next() {
		f, err := scanSQLiteFile(rows)
		if err != nil {
			return nil, s.wrap(ctx, "list files", err)
		}
		files = append(files, f)
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrap(ctx, "list files", err)
	}
	return files, nil
}

// DeleteFile removes the user's file with this id, or returns
// metadata.ErrNotFound.
func (s *SQLite) DeleteFile(ctx context.Context, userID, id string) error {
	parsed, err := uuid.Parse(id)
	if err != nil {
		return metadata.ErrNotFound
	}
	res, err := s.write.ExecContext(ctx, sqliteDeleteFile, parsed.String(), userID)
	if err != nil {
		return s.wrap(ctx, "delete file", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return s.wrap(ctx, "delete file", err)
	}
	if n == 0 {
		return metadata.ErrNotFound
	}
	return nil
}

// FindAsset returns the record of a provider asset whoever owns it, or
// metadata.ErrNotFound.
func (s *SQLite) FindAsset(ctx context.Context, provider, providerID string) (metadata.File, error) {
	return s.getOne(ctx, "find asset", sqliteFileByAsset, provider, providerID)
}

// WebhookDelivered reports whether a delivery with this body hash was
// recorded for the provider.
func (s *SQLite) WebhookDelivered(ctx context.Context, provider string, key []byte) (bool, error) {
	var seen bool
	if err := s.read.QueryRowContext(ctx, sqliteWebhookDelivered, provider, key).Scan(&seen); err != nil {
		return false, s.wrap(ctx, "look up webhook delivery", err)
	}
	return seen, nil
}

// RecordWebhook records a delivery; a key already recorded keeps its
// first time.
func (s *SQLite) RecordWebhook(ctx context.Context, provider string, key []byte, at time.Time) error {
	_, err := s.write.ExecContext(ctx, sqliteRecordWebhook, provider, key, at.UnixMicro())
	return s.wrap(ctx, "record webhook delivery", err)
}

// PruneWebhooks forgets the deliveries recorded before the given time.
func (s *SQLite) PruneWebhooks(ctx context.Context, before time.Time) (int64, error) {
	res, err := s.write.ExecContext(ctx, sqlitePruneWebhooks, before.UnixMicro())
	if err != nil {
		return 0, s.wrap(ctx, "prune webhook deliveries", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, s.wrap(ctx, "prune webhook deliveries", err)
	}
	return n, nil
}

// scanSQLiteFile reads one row of fileColumns from a *sql.Row or *sql.Rows.
func scanSQLiteFile(row interface{ Scan(...any) error }) (metadata.File, error) {
	var f metadata.File
	var micros int64
	err := row.Scan(&f.ID, &f.Provider, &f.ProviderID, &f.URL, &f.ResourceType, &f.UserID,
		&f.Bytes, &f.Format, &f.MimeType, &f.Width, &f.Height, &f.OriginalFilename, &micros)
	f.CreatedAt = time.UnixMicro(micros).UTC()
	return f, err
}

func (s *SQLite) wrap(ctx context.Context, op string, err error) error {
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) && !errors.Is(err, context.DeadlineExceeded) {
		// The driver interrupts a statement whose deadline passed (often
		// while it waits for a lock) and reports SQLITE_INTERRUPT; the
		// cause is the database not answering in time.
		err = fmt.Errorf("%w: %w", context.DeadlineExceeded, err)
	}
	return classifyErr(ctx, op, err, sqliteUnreachable)
}

// sqliteUnreachable picks the SQLite failures that mean "not now" rather
// than "not this": the file is locked by another process past the busy
// timeout, cannot be opened, or the disk failed or is full. A deadline
// running out counts too, as for PostgreSQL.
func sqliteUnreachable(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code() & 0xff { // the primary code, without the extended bits
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_CANTOPEN,
		sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL, sqlite3.SQLITE_PROTOCOL:
		return true
	}
	return false
}

// Migrate applies the pending migrations/sqlite files, each in its own
// IMMEDIATE transaction on the writer: a second process migrating the same
// file at once waits for the lock, then finds the migration recorded.
func (s *SQLite) Migrate(ctx context.Context) error {
	migrations, err := loadMigrations(migrationFiles, "migrations/sqlite")
	if err != nil {
		return err
	}
	for _, m := range migrations {
		if err := s.apply(ctx, m); err != nil {
			return s.wrap(ctx, "migration "+m.name, err)
		}
	}
	return nil
}

const (
	sqliteCreateMigrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    INTEGER PRIMARY KEY,
	name       TEXT    NOT NULL,
	applied_at TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
)`
	sqliteMigrationApplied = `SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = ?)`
	sqliteRecordMigration  = `INSERT INTO schema_migrations (version, name) VALUES (?, ?)`
)

func (s *SQLite) apply(ctx context.Context, m migration) error {
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	if _, err := tx.ExecContext(ctx, sqliteCreateMigrationsTable); err != nil {
		return err
	}
	var applied bool
	if err := tx.QueryRowContext(ctx, sqliteMigrationApplied, m.version).Scan(&applied); err != nil {
		return err
	}
	if applied {
		return nil
	}
	// The driver runs every statement of a multi-statement text.
	if _, err := tx.ExecContext(ctx, m.sql); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, sqliteRecordMigration, m.version, m.name); err != nil {
		return err
	}
	return tx.Commit()
}

// MigrateSQLite applies the pending migrations to the database file at
// path, creating it if need be, and closes it. Idempotent.
func MigrateSQLite(ctx context.Context, path string) error {
	s, err := OpenSQLite(ctx, path)
	if err != nil {
		return err
	}
	defer s.Close()
	return s.Migrate(ctx)
}
