package db

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/brokerdev/broker/metadata"
)

// defaultConnectTimeout bounds a connection attempt when the URL does not
// (connect_timeout=…). Without it a dial to an unreachable host waits for
// the request's whole deadline; with it the request gets a prompt 503. It
// leaves room for a Neon compute waking from suspension.
const defaultConnectTimeout = 10 * time.Second

// saveAttempts bounds SaveFile's insert-then-look-up loop; see SaveFile.
const saveAttempts = 3

// Postgres is the metadata.Store on PostgreSQL (Neon included). It holds
// the process's one connection pool and is safe for concurrent use.
type Postgres struct {
	pool *pgxpool.Pool
}

var _ metadata.Store = (*Postgres)(nil)

// OpenPostgres creates the connection pool for url. Pool settings come from
// the URL (pool_max_conns, pool_max_conn_idle_time, …; pgxpool's defaults
// otherwise); connect_timeout defaults to 10s. It does not connect: the
// first query does, so a server can start while the database is away and
// report it through Ping.
func OpenPostgres(ctx context.Context, url string) (*Postgres, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx's parse errors quote the connection string, password and all.
		return nil, errors.New("db: DATABASE_URL is not a valid PostgreSQL URL")
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = defaultConnectTimeout
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("db: open pool: %w", err)
	}
	return &Postgres{pool: pool}, nil
}

// Pool exposes the pool to tests and benchmarks.
func (p *Postgres) Pool() *pgxpool.Pool { return p.pool }

// Close releases the pool's connections.
func (p *Postgres) Close() { p.pool.Close() }

// Ping checks that the database answers.
func (p *Postgres) Ping(ctx context.Context) error {
	return wrapErr(ctx, "ping", p.pool.Ping(ctx))
}

// SaveFile records f unless its asset is already recorded, in which case it
// returns the existing record, whoever owns it, with created=false.
//
// One round trip per attempt: acting for f's owner, and allowed to read
// this one asset's record whoever owns it (row-level security, see
// rls.go), the batch inserts and then looks the asset up. The two are
// separate statements, each with its own snapshot, so when a concurrent
// insert of the same asset makes ours do nothing (PostgreSQL waits for
// that transaction to commit first), the look-up sees its row. Only a
// delete landing between the two leaves nothing to find; then the insert
// is tried again.
func (p *Postgres) SaveFile(ctx context.Context, f metadata.File) (metadata.File, bool, error) {
	if f.ID == "" {
		id, err := uuid.NewV7()
		if err != nil {
			return metadata.File{}, false, fmt.Errorf("db: save file: new id: %w", err)
		}
		f.ID = id.String()
	} else if _, err := uuid.Parse(f.ID); err != nil {
		return metadata.File{}, false, fmt.Errorf("db: save file: id %q is not a UUID: %w", f.ID, err)
	}
	// Microseconds are what PostgreSQL keeps (it would round, not
	// truncate); cutting here makes the returned record and every store
	// agree with what a later read gives.
	if f.CreatedAt.IsZero() {
		f.CreatedAt = time.Now()
	}
	f.CreatedAt = f.CreatedAt.UTC().Truncate(time.Microsecond)

	for range saveAttempts {
		b := actAsForAsset(f.UserID, f.Provider, f.ProviderID)
		b.Queue(sqlInsertFile,
			f.ID, f.Provider, f.ProviderID, f.URL, f.ResourceType, f.UserID,
			f.Bytes, f.Format, f.MimeType, f.Width, f.Height, f.OriginalFilename, f.CreatedAt)
		b.Queue(sqlFileByAsset, f.Provider, f.ProviderID)
		var stored metadata.File
		var created, found bool
		err := p.sendScoped(ctx, b, func(br pgx.BatchResults) error {
			var err error
			stored, err = scanFile(br.QueryRow())
			switch {
			case err == nil:
				created = true
				return nil
			case !errors.Is(err, pgx.ErrNoRows):
				return err
			}
			stored, err = scanFile(br.QueryRow())
			switch {
			case err == nil:
				found = true
				return nil
			case errors.Is(err, pgx.ErrNoRows):
				return nil
			default:
				return fmt.Errorf("look up existing record: %w", err)
			}
		})
		if err != nil {
			return metadata.File{}, false, wrapErr(ctx, "save file", err)
		}
		if created || found {
			return stored, created, nil
		}
	}
	return metadata.File{}, false, fmt.Errorf("db: save file %s %s: the existing record kept vanishing before it could be read", f.Provider, f.ProviderID)
}

// GetFile returns the user's file with this id, or metadata.ErrNotFound.
func (p *Postgres) GetFile(ctx context.Context, userID, id string) (metadata.File, error) {
	if _, err := uuid.Parse(id); err != nil {
		// No file has an id that is not a UUID.
		return metadata.File{}, metadata.ErrNotFound
	}
	return p.getOne(ctx, "get file", actAs(userID), sqlFileByID, id, userID)
}

// GetByProviderID returns the user's file for this provider asset, or
// metadata.ErrNotFound.
func (p *Postgres) GetByProviderID(ctx context.Context, userID, provider, providerID string) (metadata.File, error) {
	return p.getOne(ctx, "get file by provider id", actAs(userID), sqlUserFileByAsset, userID, provider, providerID)
}

// getOne runs one single-row query in the batch b (actAs or
// actAsForAsset), so the row-level-security setting goes with it.
func (p *Postgres) getOne(ctx context.Context, op string, b *pgx.Batch, sql string, args ...any) (metadata.File, error) {
	b.Queue(sql, args...)
	var f metadata.File
	err := p.sendScoped(ctx, b, func(br pgx.BatchResults) error {
		var err error
		f, err = scanFile(br.QueryRow())
		return err
	})
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return metadata.File{}, metadata.ErrNotFound
	case err != nil:
		return metadata.File{}, wrapErr(ctx, op, err)
	}
	return f, nil
}

// The position before every row: 'infinity' is later than any created_at,
// so the first page needs no separate statement.
var (
	listStart   = pgtype.Timestamptz{InfinityModifier: pgtype.Infinity, Valid: true}
	listStartID = uuid.Max.String()
)

// ListFiles returns up to q.Limit of the user's files, newest first
// (created_at, then id, descending), strictly after q.After.
func (p *Postgres) ListFiles(ctx context.Context, userID string, q metadata.ListQuery) ([]metadata.File, error) {
	if q.Limit < 1 {
		return nil, fmt.Errorf("db: list files: limit must be at least 1, got %d", q.Limit)
	}
	var afterTime any = listStart
	afterID := listStartID
	if !q.After.IsZero() {
		if _, err := uuid.Parse(q.After.ID); err != nil {
			return nil, fmt.Errorf("db: list files: cursor id %q is not a UUID: %w", q.After.ID, err)
		}
		afterTime, afterID = q.After.CreatedAt, q.After.ID
	}
	b := actAs(userID)
	b.Queue(sqlListFiles, userID, q.Provider, q.ResourceType, afterTime, afterID, q.Limit)
	var files []metadata.File
	err := p.sendScoped(ctx, b, func(br pgx.BatchResults) error {
		rows, err := br.Query()
		if err != nil {
			return err
		}
		files, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (metadata.File, error) { return scanFile(row) })
		return err
	})
	if err != nil {
		return nil, wrapErr(ctx, "list files", err)
	}
	return files, nil
}

// DeleteFile removes the user's file with this id, or returns
// metadata.ErrNotFound.
func (p *Postgres) DeleteFile(ctx context.Context, userID, id string) error {
	if _, err := uuid.Parse(id); err != nil {
		return metadata.ErrNotFound
	}
	b := actAs(userID)
	b.Queue(sqlDeleteFile, id, userID)
	var deleted int64
	err := p.sendScoped(ctx, b, func(br pgx.BatchResults) error {
		tag, err := br.Exec()
		deleted = tag.RowsAffected()
		return err
	})
	if err != nil {
		return wrapErr(ctx, "delete file", err)
	}
	if deleted == 0 {
		return metadata.ErrNotFound
	}
	return nil
}

// FindAsset returns the record of a provider asset whoever owns it, or
// metadata.ErrNotFound. Row-level security lets the transaction read this
// one asset's record and nothing else (actAsForAsset with no user).
func (p *Postgres) FindAsset(ctx context.Context, provider, providerID string) (metadata.File, error) {
	return p.getOne(ctx, "find asset", actAsForAsset("", provider, providerID), sqlFileByAsset, provider, providerID)
}

// WebhookDelivered reports whether a delivery with this body hash was
// recorded for the provider.
func (p *Postgres) WebhookDelivered(ctx context.Context, provider string, key []byte) (bool, error) {
	var seen bool
	if err := p.pool.QueryRow(ctx, sqlWebhookDelivered, provider, key).Scan(&seen); err != nil {
		return false, wrapErr(ctx, "look up webhook delivery", err)
	}
	return seen, nil
}

// RecordWebhook records a delivery; a key already recorded keeps its
// first time.
func (p *Postgres) RecordWebhook(ctx context.Context, provider string, key []byte, at time.Time) error {
	_, err := p.pool.Exec(ctx, sqlRecordWebhook, provider, key, at.UTC().Truncate(time.Microsecond))
	return wrapErr(ctx, "record webhook delivery", err)
}

// PruneWebhooks forgets the deliveries recorded before the given time.
func (p *Postgres) PruneWebhooks(ctx context.Context, before time.Time) (int64, error) {
	tag, err := p.pool.Exec(ctx, sqlPruneWebhooks, before.UTC())
	if err != nil {
		return 0, wrapErr(ctx, "prune webhook deliveries", err)
	}
	return tag.RowsAffected(), nil
}

// scanFile reads one row of fileColumns.
func scanFile(row pgx.Row) (metadata.File, error) {
	var f metadata.File
	err := row.Scan(&f.ID, &f.Provider, &f.ProviderID, &f.URL, &f.ResourceType, &f.UserID,
		&f.Bytes, &f.Format, &f.MimeType, &f.Width, &f.Height, &f.OriginalFilename, &f.CreatedAt)
	// pgx gives timestamptz in the local zone; records are UTC everywhere.
	f.CreatedAt = f.CreatedAt.UTC()
	return f, err
}

// Migrate applies the pending migrations. See MigratePostgres.
func (p *Postgres) Migrate(ctx context.Context) error {
	migrations, err := loadMigrations(migrationFiles, "migrations/postgres")
	if err != nil {
		return err
	}
	for _, m := range migrations {
		if err := p.apply(ctx, m); err != nil {
			return wrapErr(ctx, "migration "+m.name, err)
		}
	}
	return nil
}

// apply runs one migration in its own transaction, unless already applied.
// The advisory lock comes first, so replicas starting together take turns:
// the first applies, the others then find it recorded. A transaction-scoped
// lock is released by COMMIT or ROLLBACK whatever happens, and works
// through a transaction-mode connection pooler such as Neon's.
func (p *Postgres) apply(ctx context.Context, m migration) error {
	return pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, sqlMigrationLock, migrationLockKey); err != nil {
			return err
		}
		// CREATE TABLE IF NOT EXISTS needs CREATE on the schema even when
		// the table is there; asking first lets a role that may only read
		// and write rows (docs/neon.md's broker_app) start with
		// AUTO_MIGRATE=true once the owner has migrated.
		var tableExists bool
		if err := tx.QueryRow(ctx, sqlMigrationsTableExists).Scan(&tableExists); err != nil {
			return err
		}
		if !tableExists {
			if _, err := tx.Exec(ctx, sqlCreateMigrationsTable); err != nil {
				return err
			}
		}
		var applied bool
		if err := tx.QueryRow(ctx, sqlMigrationApplied, m.version).Scan(&applied); err != nil {
			return err
		}
		if applied {
			return nil
		}
		// Without arguments pgx sends the file as one simple-protocol
		// query, which may hold many statements.
		if _, err := tx.Exec(ctx, m.sql); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, sqlRecordMigration, m.version, m.name)
		return err
	})
}

// MigratePostgres applies the pending migrations to the database at url
// and closes its connections: what `broker migrate` runs. Idempotent, and
// safe to run from several processes at once.
func MigratePostgres(ctx context.Context, url string) error {
	p, err := OpenPostgres(ctx, url)
	if err != nil {
		return err
	}
	defer p.Close()
	return p.Migrate(ctx)
}
