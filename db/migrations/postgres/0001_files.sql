-- 0001: the files table, the Neon guides' views over it, and the import of
-- the guides' own tables where an earlier version of the app created them.

-- One table for every provider's records. An asset has one owner, whence
-- the uniqueness on (provider, provider_id) that SaveFile relies on.
CREATE TABLE files (
    id                uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    provider          text        NOT NULL CHECK (provider IN ('cloudinary', 'uploadcare')),
    provider_id       text        NOT NULL,
    url               text        NOT NULL,
    resource_type     text        NOT NULL,
    user_id           text        NOT NULL,
    bytes             bigint,
    format            text,
    mime_type         text,
    width             integer,
    height            integer,
    original_filename text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT files_provider_asset_key UNIQUE (provider, provider_id)
);

-- Every read is per user; this index answers ListFiles' keyset order
-- ((created_at, id) < cursor, newest first) without a sort.
CREATE INDEX files_user_created_at_idx ON files (user_id, created_at DESC, id DESC);

-- Import the guides' tables. Each guide told its readers to create a table
-- named like the view that now replaces it. Where such a table exists, its
-- rows are copied into files and the table is kept under a new name
-- (<name>_legacy, or _legacy_2, _legacy_3 … if taken), so no row is lost
-- and anything that referenced it still finds it.
--
-- The guides invite readers to add columns; any column named like a files
-- column (bytes, format, mime_type, width, height, original_filename) is
-- copied too. A missing or NULL resource_type becomes 'image' for
-- Cloudinary (Cloudinary's own default) and 'raw' for Uploadcare, which has
-- no resource types. A missing upload_timestamp becomes now().
DO $import$
DECLARE
    guide              record;
    legacy_table       oid;
    legacy_columns     name[];
    extra_columns      text;
    extra_values       text;
    resource_type_expr text;
    created_at_expr    text;
    new_name           text;
    suffix             integer;
    copied             bigint;
BEGIN
    FOR guide IN
        SELECT * FROM (VALUES
            ('cloudinary_files', 'cloudinary', 'public_id', 'media_url', 'image'),
            ('uploadcare_files', 'uploadcare', 'file_id',   'file_url',  'raw')
        ) AS g (table_name, provider, id_column, url_column, default_resource_type)
    LOOP
        SELECT c.oid INTO legacy_table
          FROM pg_class c
         WHERE c.relname = guide.table_name
           AND c.relnamespace = to_regnamespace(current_schema())
           AND c.relkind IN ('r', 'p');
        CONTINUE WHEN legacy_table IS NULL;

        SELECT array_agg(attname) INTO legacy_columns
          FROM pg_attribute
         WHERE attrelid = legacy_table AND attnum > 0 AND NOT attisdropped;

        SELECT coalesce(string_agg(format(', %I', f.attname), '' ORDER BY f.attnum), ''),
               coalesce(string_agg(format(', src.%I::%s', f.attname, format_type(f.atttypid, f.atttypmod)), '' ORDER BY f.attnum), '')
          INTO extra_columns, extra_values
          FROM pg_attribute f
         WHERE f.attrelid = 'files'::regclass
           AND f.attname IN ('bytes', 'format', 'mime_type', 'width', 'height', 'original_filename')
           AND f.attname = ANY (legacy_columns);

        resource_type_expr := CASE WHEN 'resource_type' = ANY (legacy_columns)
            THEN format('coalesce(src.resource_type::text, %L)', guide.default_resource_type)
            ELSE quote_literal(guide.default_resource_type) END;
        created_at_expr := CASE WHEN 'upload_timestamp' = ANY (legacy_columns)
            THEN 'coalesce(src.upload_timestamp::timestamptz, now())'
            ELSE 'now()' END;

        EXECUTE format(
            'INSERT INTO files (provider, provider_id, url, resource_type, user_id, created_at%s)
             SELECT %L, src.%I::text, src.%I::text, %s, src.user_id::text, %s%s
               FROM %I AS src
             ON CONFLICT (provider, provider_id) DO NOTHING',
            extra_columns, guide.provider, guide.id_column, guide.url_column,
            resource_type_expr, created_at_expr, extra_values, guide.table_name);
        GET DIAGNOSTICS copied = ROW_COUNT;

        new_name := guide.table_name || '_legacy';
        suffix := 1;
        WHILE to_regclass(format('%I.%I', current_schema(), new_name)) IS NOT NULL LOOP
            suffix := suffix + 1;
            new_name := format('%s_legacy_%s', guide.table_name, suffix);
        END LOOP;
        EXECUTE format('ALTER TABLE %I RENAME TO %I', guide.table_name, new_name);
        RAISE NOTICE 'broker: copied % rows of % into files; the table is now %', copied, guide.table_name, new_name;
    END LOOP;
END
$import$;

-- The guides' INSERT statements name neither provider nor id, so the views
-- take inserts through one trigger function, told by its arguments which
-- provider the view is and which of its columns hold the asset id and URL,
-- and the resource type to use where the view has none. UPDATE and DELETE
-- need no trigger: the views are simple enough for PostgreSQL to update
-- files through them directly.
CREATE FUNCTION files_guide_view_insert() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
    given  jsonb := to_jsonb(NEW);
    stored files;
BEGIN
    INSERT INTO files (id, provider, provider_id, url, resource_type, user_id, created_at)
    VALUES (
        coalesce((given ->> 'id')::uuid, gen_random_uuid()),
        TG_ARGV[0],
        given ->> TG_ARGV[1],
        given ->> TG_ARGV[2],
        CASE WHEN given ? 'resource_type' THEN given ->> 'resource_type' ELSE TG_ARGV[3] END,
        given ->> 'user_id',
        coalesce((given ->> 'upload_timestamp')::timestamptz, now()))
    RETURNING * INTO stored;
    -- Hand back what was stored, so INSERT … RETURNING on the view answers
    -- as it did on the guide's table.
    RETURN jsonb_populate_record(NEW, jsonb_build_object('id', stored.id, 'upload_timestamp', stored.created_at));
END
$fn$;

CREATE VIEW cloudinary_files AS
SELECT id, provider_id AS public_id, url AS media_url, resource_type, user_id, created_at AS upload_timestamp
  FROM files
 WHERE provider = 'cloudinary';

CREATE TRIGGER cloudinary_files_insert
    INSTEAD OF INSERT ON cloudinary_files
    FOR EACH ROW EXECUTE FUNCTION files_guide_view_insert('cloudinary', 'public_id', 'media_url', 'image');

CREATE VIEW uploadcare_files AS
SELECT id, provider_id AS file_id, url AS file_url, user_id, created_at AS upload_timestamp
  FROM files
 WHERE provider = 'uploadcare';

CREATE TRIGGER uploadcare_files_insert
    INSTEAD OF INSERT ON uploadcare_files
    FOR EACH ROW EXECUTE FUNCTION files_guide_view_insert('uploadcare', 'file_id', 'file_url', 'raw');
