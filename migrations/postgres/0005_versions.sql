-- Credentials have numbered versions (see the SQLite migration 0008 for the model). The secret
-- lives only in credential_versions; every existing credential becomes version 1, its blob
-- copied as it is (format 1 opens as version 1 only): no key is needed, no secret rewritten.
--
-- Dropping encrypted_credentials from cloud_credentials removes it from the catalog at once;
-- the old tuples keep the bytes until VACUUM reclaims them (the README's "What PostgreSQL
-- keeps" says how to clear them).
CREATE TABLE credential_versions (
    credential_id         uuid NOT NULL REFERENCES cloud_credentials (id),
    version               bigint NOT NULL CHECK (version >= 1),
    state                 text NOT NULL CHECK (state IN ('enabled', 'disabled', 'destroyed')),
    encrypted_credentials bytea,
    key_version           integer,
    created_by            text,
    idempotency_key       text,
    request_fingerprint   bytea,
    created_at            timestamptz NOT NULL,
    destroyed_at          timestamptz,
    PRIMARY KEY (credential_id, version),
    CHECK ((state = 'destroyed') = (encrypted_credentials IS NULL))
);
CREATE UNIQUE INDEX credential_versions_idempotency
    ON credential_versions (credential_id, idempotency_key) WHERE idempotency_key IS NOT NULL;

INSERT INTO credential_versions (credential_id, version, state, encrypted_credentials, key_version, created_at)
    SELECT id, 1, 'enabled', encrypted_credentials, key_version, created_at FROM cloud_credentials;

ALTER TABLE cloud_credentials
    ADD COLUMN current_version bigint,
    ADD COLUMN latest_version bigint NOT NULL DEFAULT 1,
    ADD COLUMN rotated_at timestamptz,
    ADD COLUMN revision bigint NOT NULL DEFAULT 1;
UPDATE cloud_credentials SET current_version = 1, rotated_at = created_at;
ALTER TABLE cloud_credentials DROP COLUMN encrypted_credentials, DROP COLUMN key_version;

ALTER TABLE credential_audit_log DROP CONSTRAINT credential_audit_log_action_check;
ALTER TABLE credential_audit_log ADD CONSTRAINT credential_audit_log_action_check CHECK (action IN
    ('created', 'updated', 'deleted', 'verified', 'used', 'failed', 'denied', 'rotated',
     'version_disabled', 'version_enabled', 'version_destroyed', 'restored', 'purged'));
