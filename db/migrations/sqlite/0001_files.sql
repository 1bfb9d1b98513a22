-- 0001 (SQLite): the files table and the Neon guides' views over it.
--
-- The same table as in PostgreSQL, in SQLite's types:
--   * id is the canonical lower-case UUID text, whose byte order (the
--     BINARY collation) is the order of the UUID, so ListFiles' tie-break on
--     id agrees with PostgreSQL's;
--   * created_at is microseconds since the Unix epoch, UTC, as INTEGER: the
--     precision PostgreSQL keeps, compared as numbers, so keyset positions
--     are exact (text timestamps would compare as strings and lose
--     precision to formatting).
-- There is no guide-table import here: the SQLite store is for `broker dev`,
-- whose database the broker itself creates.

CREATE TABLE files (
    id                TEXT    PRIMARY KEY NOT NULL,
    provider          TEXT    NOT NULL CHECK (provider IN ('cloudinary', 'uploadcare')),
    provider_id       TEXT    NOT NULL,
    url               TEXT    NOT NULL,
    resource_type     TEXT    NOT NULL,
    user_id           TEXT    NOT NULL,
    bytes             INTEGER,
    format            TEXT,
    mime_type         TEXT,
    width             INTEGER,
    height            INTEGER,
    original_filename TEXT,
    created_at        INTEGER NOT NULL,
    CONSTRAINT files_provider_asset_key UNIQUE (provider, provider_id)
);

-- Every read is per user; this index answers ListFiles' keyset order
-- ((created_at, id) < cursor, newest first) without a sort.
CREATE INDEX files_user_created_at_idx ON files (user_id, created_at DESC, id DESC);

-- The guides' views. upload_timestamp is shown as UTC text with every
-- stored microsecond ("2026-01-02 03:04:05.123456"), a form SQLite's own
-- date functions read.
CREATE VIEW cloudinary_files AS
SELECT id, provider_id AS public_id, url AS media_url, resource_type, user_id,
       strftime('%Y-%m-%d %H:%M:%S', created_at / 1000000, 'unixepoch') || printf('.%06d', created_at % 1000000) AS upload_timestamp
  FROM files
 WHERE provider = 'cloudinary';

CREATE VIEW uploadcare_files AS
SELECT id, provider_id AS file_id, url AS file_url, user_id,
       strftime('%Y-%m-%d %H:%M:%S', created_at / 1000000, 'unixepoch') || printf('.%06d', created_at % 1000000) AS upload_timestamp
  FROM files
 WHERE provider = 'uploadcare';

-- The guides' INSERT statements name neither provider nor id nor time, so
-- the views take inserts through INSTEAD OF triggers that supply them: a
-- random (version 4) UUID, the view's provider, 'raw' as Uploadcare's
-- resource type, and now. A given upload_timestamp is read as SQLite date
-- text, to the millisecond (SQLite's date functions go no finer). The defaults are plain SQL, in a view both triggers share, so the
-- guides' statements work from any SQLite client, not only the broker.
CREATE VIEW files_insert_defaults AS
SELECT lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4' ||
       substr(lower(hex(randomblob(2))), 2) || '-' || substr('89ab', 1 + (abs(random()) % 4), 1) ||
       substr(lower(hex(randomblob(2))), 2) || '-' || lower(hex(randomblob(6))) AS new_id,
       CAST(round(unixepoch('subsec') * 1000000) AS INTEGER) AS now_micros;

CREATE TRIGGER cloudinary_files_insert INSTEAD OF INSERT ON cloudinary_files
BEGIN
    INSERT INTO files (id, provider, provider_id, url, resource_type, user_id, created_at)
    SELECT coalesce(NEW.id, d.new_id), 'cloudinary', NEW.public_id, NEW.media_url,
           coalesce(NEW.resource_type, 'image'), NEW.user_id,
           coalesce(CAST(round(unixepoch(NEW.upload_timestamp, 'subsec') * 1000000) AS INTEGER), d.now_micros)
      FROM files_insert_defaults AS d;
END;

CREATE TRIGGER uploadcare_files_insert INSTEAD OF INSERT ON uploadcare_files
BEGIN
    INSERT INTO files (id, provider, provider_id, url, resource_type, user_id, created_at)
    SELECT coalesce(NEW.id, d.new_id), 'uploadcare', NEW.file_id, NEW.file_url,
           'raw', NEW.user_id,
           coalesce(CAST(round(unixepoch(NEW.upload_timestamp, 'subsec') * 1000000) AS INTEGER), d.now_micros)
      FROM files_insert_defaults AS d;
END;
