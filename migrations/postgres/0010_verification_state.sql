-- Scheduled verification and what verification learns (see the SQLite migration 0013).
ALTER TABLE cloud_credentials ADD COLUMN verified_identity text;
ALTER TABLE cloud_credentials ADD COLUMN verification_findings text;
ALTER TABLE cloud_credentials ADD COLUMN verification_failures bigint NOT NULL DEFAULT 0;
ALTER TABLE cloud_credentials ADD COLUMN first_failed_at timestamptz;
ALTER TABLE cloud_credentials ADD COLUMN failing_since timestamptz;
ALTER TABLE cloud_credentials ADD COLUMN next_verify_at timestamptz NOT NULL DEFAULT 'epoch';
CREATE INDEX cloud_credentials_verify_due ON cloud_credentials (next_verify_at) WHERE is_active;

ALTER TABLE credential_audit_log DROP CONSTRAINT credential_audit_log_action_check;
ALTER TABLE credential_audit_log ADD CONSTRAINT credential_audit_log_action_check CHECK (action IN
    ('created', 'updated', 'deleted', 'verified', 'used', 'failed', 'denied', 'rotated',
     'version_disabled', 'version_enabled', 'version_destroyed', 'restored', 'purged',
     'key_rotated', 'rewrap_started', 'rewrap_finished', 'key_retired',
     'customer_keys_enabled', 'customer_purged', 'verification_failed'));
