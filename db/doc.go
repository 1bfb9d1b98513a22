// Package db keeps the broker's file records in a database: the
// metadata.Store for PostgreSQL (Neon included) and for SQLite (`broker
// dev`), and the SQL migrations behind them, embedded in the binary.
//
// # Connecting
//
// Open and Migrate take DATABASE_URL as it is and pick the store it names
// (config.ParseDatabaseURL): PostgreSQL for postgres:// and postgresql://,
// SQLite for sqlite:PATH (see SQLite).
//
// OpenPostgres takes a postgres:// or postgresql:// URL and builds the
// process's single connection pool. Everything pgx understands in the URL
// applies, pool settings included: pool_max_conns (default: the larger of 4
// and the number of CPUs), pool_max_conn_idle_time, pool_max_conn_lifetime,
// connect_timeout (default 10s, enough for a Neon compute to wake up),
// sslmode, and default_query_exec_mode (set it to exec or simple_protocol
// behind a pooler that does not support prepared statements).
//
// OpenSQLite takes a file path (sqlite:PATH in DATABASE_URL), creates the
// file and its folder when missing, and keeps one writer connection and a
// few readers on it in WAL mode, with a 5 s busy timeout for locks held by
// other processes. The driver is modernc.org/sqlite, pure Go: no cgo.
// The SQLite schema (migrations/sqlite) is the same table with SQLite's
// types: id as canonical lower-case UUID text, created_at as INTEGER
// microseconds since the Unix epoch, so ordering and cursors are exact.
// The storetest suite runs against both stores.
//
// # Schema
//
// One table, files, holds every provider's records, unique on (provider,
// provider_id): an asset belongs to exactly one user. Every read and delete
// the store issues is scoped by user_id; the only statement that looks
// across users is SaveFile's look-up of an asset's existing record, which
// is how a second user's claim is recognised (the caller answers 409).
//
// For readers of Neon's Cloudinary and Uploadcare guides, two views keep
// the guides' SQL working unchanged:
//
//	cloudinary_files (id, public_id, media_url, resource_type, user_id, upload_timestamp)
//	uploadcare_files (id, file_id, file_url, user_id, upload_timestamp)
//
// The guides' INSERT statements land in files through an INSTEAD OF INSERT
// trigger, which supplies the provider; a row inserted through
// uploadcare_files gets resource_type 'raw', since Uploadcare has no
// resource types. SELECT, UPDATE and DELETE go through the views directly.
// The views' id is the files UUID, not the guides' SERIAL integer. SQLite
// has the same views and INSERT triggers; its upload_timestamp is UTC text
// with microseconds, and it has no import of older tables.
//
// # Migrations
//
// Migrations are SQL files, migrations/postgres/NNNN_name.sql, applied in
// version order, each in its own transaction, and recorded in
// schema_migrations (version, name, applied_at). Each transaction first
// takes a transaction-scoped advisory lock, so replicas migrating at once
// take turns, and a failed migration leaves nothing behind. Nothing needs a
// superuser: the database owner (Neon's default role) can run them all.
// MigratePostgres is what `broker migrate` runs; applying again is a no-op.
//
// Migration 0001 adopts the guides' own tables. Where a table (not a view)
// named cloudinary_files or uploadcare_files exists in the current schema,
// every row is copied into files (public_id or file_id becomes provider_id;
// media_url or file_url becomes url; upload_timestamp becomes created_at,
// or now() when NULL; columns the reader added with a files column's name,
// such as format, width or bytes, come along), the table is renamed to
// <name>_legacy (or <name>_legacy_2, … if that is taken) with its rows,
// constraints and foreign keys intact, and the view takes its name. Row
// level security policies stay on the renamed table; files has none.
//
// # Errors
//
// Failures that mean the database cannot be reached right now (no
// connection, a connection dropped, an administrator or Neon shutting the
// compute down, no free connection slot, a deadline running out while
// waiting) wrap metadata.ErrUnavailable. A canceled context comes back as
// context.Canceled, never as ErrUnavailable. A missing record, or one owned
// by another user, is metadata.ErrNotFound. Everything else is wrapped with
// the failing operation's name.
package db
