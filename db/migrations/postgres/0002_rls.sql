-- 0002: row-level security on files.
--
-- The broker scopes every statement by user_id itself; these policies are
-- the second line: a query that forgets its WHERE user_id still sees only
-- the rows of the user the transaction acts for. The broker names that
-- user in a custom setting at the start of every transaction:
--
--     SELECT set_config('broker.user_id', '<user id>', true)
--
-- (true: for this transaction only, so nothing outlives it on a pooled
-- connection). No setting, or an empty one, means no user: no row is
-- visible and none can be written.
--
-- FORCE makes the policies bind the table's owner too, which is the role
-- Neon's connection string names by default. Superusers and roles with
-- BYPASSRLS are never bound by row-level security; the broker warns at
-- start when it connects as one (docs/neon.md).
--
-- Everything here is allowed to the table's owner: no superuser needed.

ALTER TABLE files ENABLE ROW LEVEL SECURITY;
ALTER TABLE files FORCE ROW LEVEL SECURITY;

-- A user reads, writes and deletes their own rows. nullif turns the empty
-- string, which an unset placeholder setting reads as after a transaction
-- that set it, into NULL, which matches nothing.
CREATE POLICY files_owner ON files
    USING (user_id = nullif(current_setting('broker.user_id', true), ''))
    WITH CHECK (user_id = nullif(current_setting('broker.user_id', true), ''));

-- One asset, whoever owns it, for reading only. SaveFile must see whether
-- another user already recorded the asset (the broker answers 409), and a
-- webhook must find the owner of an asset it is told about; both name the
-- asset in two more settings for the length of one transaction. A query
-- that does not name an asset is unaffected.
CREATE POLICY files_asset_lookup ON files FOR SELECT
    USING (provider = nullif(current_setting('broker.asset_provider', true), '')
       AND provider_id = nullif(current_setting('broker.asset_id', true), ''));

-- The guides' views read files with the rights of whoever queries them
-- (security_invoker, PostgreSQL 15 and later), so a view owned by a role
-- that bypasses row-level security does not hand every row to its readers.
-- On PostgreSQL 14 a view checks the policies as its owner, which is bound
-- by them through FORCE unless it bypasses row-level security.
DO $views$
BEGIN
    IF current_setting('server_version_num')::integer >= 150000 THEN
        ALTER VIEW cloudinary_files SET (security_invoker = true);
        ALTER VIEW uploadcare_files SET (security_invoker = true);
    END IF;
END
$views$;
