-- Per-customer keys (docs/design/customer-keys.md): each customer's random key, wrapped by a
-- master-key version, wraps the data keys of that customer's secrets (blob format 4). A
-- destroyed key (crypto-shredding) keeps its row, without the key, so none is ever made again.
CREATE TABLE customer_keys (
    customer_id  TEXT PRIMARY KEY NOT NULL REFERENCES customers (id),
    key_version  INTEGER REFERENCES encryption_keys (version),
    wrapped      BLOB,
    created_at   INTEGER NOT NULL,
    destroyed_at INTEGER,
    CHECK ((wrapped IS NULL) = (destroyed_at IS NOT NULL)),
    CHECK ((wrapped IS NULL) = (key_version IS NULL))
) STRICT;
CREATE INDEX customer_keys_by_version ON customer_keys (key_version) WHERE key_version IS NOT NULL;

-- From when new secrets are sealed under customer keys. A database that holds secrets already
-- starts without (instances of an older build may still serve it: they cannot open format 4)
-- until `credvault key enable-customer-keys`; a new one starts with them.
CREATE TABLE key_hierarchy (
    id                  INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    customer_keys_since INTEGER
) STRICT;
INSERT INTO key_hierarchy (id, customer_keys_since)
    SELECT 1, CASE WHEN EXISTS (SELECT 1 FROM credential_versions) THEN NULL
                   ELSE CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER) END;

-- The master-key versions' data keys, counted per version by `key status` and start-up.
CREATE INDEX IF NOT EXISTS credential_versions_by_key_version
    ON credential_versions (key_version) WHERE key_version IS NOT NULL;

-- When a customer was cancelled: its key is destroyed (PurgeCustomer, or the purger) once its
-- recovery window has passed since. Customers cancelled before this migration count from now.
ALTER TABLE customers ADD COLUMN cancelled_at INTEGER;
UPDATE customers SET cancelled_at = CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER)
    WHERE status = 'cancelled';
