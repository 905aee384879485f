-- Retiring a master-key version (see the SQLite migration 0011).
ALTER TABLE encryption_keys ADD COLUMN retired_at timestamptz;

CREATE TABLE audit_checkpoints (
    seq             bigint PRIMARY KEY,
    hash            bytea NOT NULL,
    mac             bytea NOT NULL,
    retired_version integer NOT NULL,
    created_at      timestamptz NOT NULL
);

ALTER TABLE credential_audit_log DROP CONSTRAINT credential_audit_log_action_check;
ALTER TABLE credential_audit_log ADD CONSTRAINT credential_audit_log_action_check CHECK (action IN
    ('created', 'updated', 'deleted', 'verified', 'used', 'failed', 'denied', 'rotated',
     'version_disabled', 'version_enabled', 'version_destroyed', 'restored', 'purged',
     'key_rotated', 'rewrap_started', 'rewrap_finished', 'key_retired'));
