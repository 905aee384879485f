-- Per-customer keys (see the SQLite migration 0012 and docs/design/customer-keys.md).
CREATE TABLE customer_keys (
    customer_id  uuid PRIMARY KEY REFERENCES customers (id),
    key_version  integer REFERENCES encryption_keys (version),
    wrapped      bytea,
    created_at   timestamptz NOT NULL,
    destroyed_at timestamptz,
    CHECK ((wrapped IS NULL) = (destroyed_at IS NOT NULL)),
    CHECK ((wrapped IS NULL) = (key_version IS NULL))
);
CREATE INDEX customer_keys_by_version ON customer_keys (key_version) WHERE key_version IS NOT NULL;

CREATE TABLE key_hierarchy (
    id                  integer PRIMARY KEY CHECK (id = 1),
    customer_keys_since timestamptz
);
INSERT INTO key_hierarchy (id, customer_keys_since)
    SELECT 1, CASE WHEN EXISTS (SELECT 1 FROM credential_versions) THEN NULL ELSE now() END;

ALTER TABLE customers ADD COLUMN cancelled_at timestamptz;
UPDATE customers SET cancelled_at = now() WHERE status = 'cancelled';

CREATE INDEX IF NOT EXISTS credential_versions_by_key_version
    ON credential_versions (key_version) WHERE key_version IS NOT NULL;

ALTER TABLE credential_audit_log DROP CONSTRAINT credential_audit_log_action_check;
ALTER TABLE credential_audit_log ADD CONSTRAINT credential_audit_log_action_check CHECK (action IN
    ('created', 'updated', 'deleted', 'verified', 'used', 'failed', 'denied', 'rotated',
     'version_disabled', 'version_enabled', 'version_destroyed', 'restored', 'purged',
     'key_rotated', 'rewrap_started', 'rewrap_finished', 'key_retired',
     'customer_keys_enabled', 'customer_purged'));
