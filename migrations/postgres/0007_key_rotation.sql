-- Master-key rotation (see the SQLite migration 0010): the version with the highest
-- current_rank seals new secrets; job_leases lets one instance at a time run the rewrap.
ALTER TABLE encryption_keys ADD COLUMN current_rank bigint, ADD COLUMN made_current_at timestamptz;
UPDATE encryption_keys SET current_rank = 1, made_current_at = created_at
    WHERE version = (SELECT min(version) FROM encryption_keys);

CREATE TABLE job_leases (
    name       text PRIMARY KEY,
    holder     uuid NOT NULL,
    expires_at timestamptz NOT NULL
);

ALTER TABLE credential_audit_log DROP CONSTRAINT credential_audit_log_action_check;
ALTER TABLE credential_audit_log ADD CONSTRAINT credential_audit_log_action_check CHECK (action IN
    ('created', 'updated', 'deleted', 'verified', 'used', 'failed', 'denied', 'rotated',
     'version_disabled', 'version_enabled', 'version_destroyed', 'restored', 'purged',
     'key_rotated', 'rewrap_started', 'rewrap_finished'));
