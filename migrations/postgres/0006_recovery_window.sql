-- Delete schedules a purge (see the SQLite migration 0009).
ALTER TABLE customers ADD COLUMN recovery_window_secs bigint NOT NULL DEFAULT 2592000
    CHECK (recovery_window_secs BETWEEN 0 AND 31536000);
ALTER TABLE cloud_credentials ADD COLUMN purge_at timestamptz, ADD COLUMN purged_at timestamptz;
CREATE INDEX cloud_credentials_purge_due ON cloud_credentials (purge_at) WHERE purge_at IS NOT NULL;
