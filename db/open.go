package db

import (
	"context"
	"fmt"

	"github.com/brokerdev/broker/config"
	"github.com/brokerdev/broker/metadata"
)

// Open opens the store DATABASE_URL selects (see config.ParseDatabaseURL).
func Open(ctx context.Context, databaseURL string) (metadata.Store, error) {
	kind, target, err := config.ParseDatabaseURL(databaseURL)
	if err != nil {
		return nil, err
	}
	switch kind {
	case config.DatabasePostgres:
		p, err := OpenPostgres(ctx, target)
		if err != nil {
			// Not p: a nil *Postgres in a Store interface is not nil.
			return nil, err
		}
		return p, nil
	case config.DatabaseSQLite:
		s, err := OpenSQLite(ctx, target)
		if err != nil {
			return nil, err
		}
		return s, nil
	default:
		return nil, fmt.Errorf("db: unknown database kind %q", kind)
	}
}

// Migrate applies the pending migrations of the database DATABASE_URL
// selects: what `broker migrate` and `broker serve` run.
func Migrate(ctx context.Context, databaseURL string) error {
	kind, target, err := config.ParseDatabaseURL(databaseURL)
	if err != nil {
		return err
	}
	switch kind {
	case config.DatabasePostgres:
		return MigratePostgres(ctx, target)
	case config.DatabaseSQLite:
		return MigrateSQLite(ctx, target)
	default:
		return fmt.Errorf("db: unknown database kind %q", kind)
	}
}
