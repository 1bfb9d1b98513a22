-- 0002 (SQLite): the webhook deliveries the broker has handled, as in
-- PostgreSQL's 0003: the SHA-256 of each handled body, so a replayed or
-- retried delivery answers 200 and changes nothing. delivered_at is
-- microseconds since the Unix epoch, UTC, like files.created_at.
CREATE TABLE webhook_deliveries (
    provider     TEXT    NOT NULL CHECK (provider IN ('cloudinary', 'uploadcare')),
    body_sha256  BLOB    NOT NULL CHECK (length(body_sha256) = 32),
    delivered_at INTEGER NOT NULL,
    PRIMARY KEY (provider, body_sha256)
);

CREATE INDEX webhook_deliveries_delivered_at_idx ON webhook_deliveries (delivered_at);
