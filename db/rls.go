package db

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Row-level security (migration 0002) lets a transaction see and change
// only the files of the user named in these settings. They are custom
// settings ("placeholder" GUCs): any role may set them, which is fine,
// because the policies guard against the broker's own mistakes (a query
// that forgets its WHERE user_id), not against someone who can already
// send SQL as the broker.
const (
	// UserSetting names the user a transaction acts for.
	UserSetting = "broker.user_id"
	// AssetProviderSetting and AssetIDSetting together name one asset whose
	// record the transaction may read whoever owns it (SaveFile's
	// ownership check; a webhook finding an asset's owner).
	AssetProviderSetting = "broker.asset_provider"
	AssetIDSetting       = "broker.asset_id"
)

// The settings are made transaction-local (set_config's third argument),
// so a pooled connection, or a server connection that a transaction-mode
// pooler such as Neon's hands to someone else next, keeps nothing.
const (
	sqlActAs         = `SELECT set_config('` + UserSetting + `', $1, true)`
	sqlActAsForAsset = `SELECT set_config('` + UserSetting + `', $1, true),
	set_config('` + AssetProviderSetting + `', $2, true),
	set_config('` + AssetIDSetting + `', $3, true)`
)

// actAs starts a batch whose statements run for userID. The batch goes to
// the server in one round trip and runs as one implicit transaction (the
// statements before the protocol's Sync; one multi-statement query in
// simple_protocol mode), so the setting made by its first statement holds
// for exactly the statements queued after it. An empty userID names no
// user: the statements see no rows.
func actAs(userID string) *pgx.Batch {
	b := &pgx.Batch{}
	b.Queue(sqlActAs, userID)
	return b
}

// actAsForAsset is actAs that may also read the record of one asset,
// whoever owns it.
func actAsForAsset(userID, provider, providerID string) *pgx.Batch {
	b := &pgx.Batch{}
	b.Queue(sqlActAsForAsset, userID, provider, providerID)
	return b
}

// sendScoped sends a batch built by actAs or actAsForAsset, checks the
// result of its set_config statement, and hands the results of the
// statements queued after it to read. The batch is closed before
// sendScoped returns; an error from the server that read did not see (a
// failed statement read skipped) comes back from Close.
func (p *Postgres) sendScoped(ctx context.Context, b *pgx.Batch, read func(pgx.BatchResults) error) error {
	br := p.pool.SendBatch(ctx, b)
	_, err := br.Exec()
	if err == nil {
		err = read(br)
	}
	if closeErr := br.Close(); err == nil {
		err = closeErr
	}
	return err
}

// BypassesRLS reports whether the role the store connects as is exempt
// from row-level security (a superuser, or a role with BYPASSRLS), in
// which case the policies of migration 0002 protect nothing and only the
// broker's own WHERE clauses scope its queries. `broker serve` warns
// about it at start.
func (p *Postgres) BypassesRLS(ctx context.Context) (bool, error) {
	var bypass bool
	err := p.pool.QueryRow(ctx, `SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user`).Scan(&bypass)
	if err != nil {
		return false, wrapErr(ctx, "check row-level security", fmt.Errorf("read the role's attributes: %w", err))
	}
	return bypass, nil
}
