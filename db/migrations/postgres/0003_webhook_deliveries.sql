-- 0003: the webhook deliveries the broker has handled.
--
-- Uploadcare signs no timestamp, so a captured webhook could be replayed
-- forever; and any provider retries a delivery it thinks failed. The broker
-- remembers each delivery it handled by the SHA-256 of its raw body and
-- answers a second delivery of the same body with 200 and no change. Rows
-- older than the retention window (a week, beyond Uploadcare's 72 hours of
-- retries) are pruned by the broker itself.
--
-- No user data lives here, so no row-level security: a key is a hash of a
-- body the provider sent, not a record of anybody's.
CREATE TABLE webhook_deliveries (
    provider     text        NOT NULL CHECK (provider IN ('cloudinary', 'uploadcare')),
    body_sha256  bytea       NOT NULL CHECK (octet_length(body_sha256) = 32),
    delivered_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, body_sha256)
);

-- Pruning deletes by age.
CREATE INDEX webhook_deliveries_delivered_at_idx ON webhook_deliveries (delivered_at);
