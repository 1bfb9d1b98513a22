package db

// Every statement the PostgreSQL store sends, in one place. Each one that
// reads or deletes is scoped by user_id; the one exception is
// sqlFileByAsset, SaveFile's and FindAsset's lookup of whoever owns an
// asset. Row
// level security (migration 0002, rls.go) scopes them all a second time:
// each runs in a transaction that names its user, and sqlFileByAsset in
// one that also names the asset it may read.

const fileColumns = `id, provider, provider_id, url, resource_type, user_id,
	bytes, format, mime_type, width, height, original_filename, created_at`

const (
	// sqlInsertFile returns no row when the asset is already recorded;
	// DO NOTHING rather than DO UPDATE, because the first record wins and
	// its owner must not change.
	sqlInsertFile = `INSERT INTO files (` + fileColumns + `)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
	ON CONFLICT (provider, provider_id) DO NOTHING
	RETURNING ` + fileColumns

	sqlFileByAsset = `SELECT ` + fileColumns + ` FROM files
	WHERE provider = $1 AND provider_id = $2`

	sqlFileByID = `SELECT ` + fileColumns + ` FROM files
	WHERE id = $1 AND user_id = $2`

	sqlUserFileByAsset = `SELECT ` + fileColumns + ` FROM files
	WHERE user_id = $1 AND provider = $2 AND provider_id = $3`

	// sqlListFiles is one statement for every filter combination, so it is
	// prepared once. The keyset condition is always present (the first
	// page starts after the largest possible position) so that it can
	// always bound the scan of files_user_created_at_idx.
	sqlListFiles = `SELECT ` + fileColumns + ` FROM files
	WHERE user_id = $1
	  AND ($2 = '' OR provider = $2)
	  AND ($3 = '' OR resource_type = $3)
	  AND (created_at, id) < ($4, $5)
	ORDER BY created_at DESC, id DESC
	LIMIT $6`

	sqlDeleteFile = `DELETE FROM files WHERE id = $1 AND user_id = $2`
)

// Webhook deliveries (migration 0003). The table holds no user data and
// has no row-level security.
const (
	sqlWebhookDelivered = `SELECT EXISTS (SELECT 1 FROM webhook_deliveries
	WHERE provider = $1 AND body_sha256 = $2)`

	sqlRecordWebhook = `INSERT INTO webhook_deliveries (provider, body_sha256, delivered_at)
	VALUES ($1, $2, $3)
	ON CONFLICT (provider, body_sha256) DO NOTHING`

	sqlPruneWebhooks = `DELETE FROM webhook_deliveries WHERE delivered_at < $1`
)

// Migration bookkeeping.
const (
	// migrationLockKey is "broker" in ASCII: one advisory lock, per
	// database, that every replica's migrator queues on.
	migrationLockKey int64 = 0x62726f6b6572

	sqlMigrationLock = `SELECT pg_advisory_xact_lock($1)`

	sqlMigrationsTableExists = `SELECT to_regclass('schema_migrations') IS NOT NULL`

	sqlCreateMigrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    bigint      PRIMARY KEY,
	name       text        NOT NULL,
	applied_at timestamptz NOT NULL DEFAULT now()
)`

	sqlMigrationApplied = `SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = $1)`

	sqlRecordMigration = `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`
)
