-- Delete schedules a purge: a deleted credential can be restored until purge_at (deleted_at
-- plus its customer's recovery window), when the purger destroys every version. purged_at marks
-- a credential whose versions are all destroyed; it can no longer be restored. Credentials
-- deleted before this version have no purge_at: they are kept as they were, until purged.
ALTER TABLE customers ADD COLUMN recovery_window_secs INTEGER NOT NULL DEFAULT 2592000
    CHECK (recovery_window_secs BETWEEN 0 AND 31536000);
ALTER TABLE cloud_credentials ADD COLUMN purge_at INTEGER;
ALTER TABLE cloud_credentials ADD COLUMN purged_at INTEGER;
-- The purger's search: few rows are ever due.
CREATE INDEX cloud_credentials_purge_due ON cloud_credentials (purge_at) WHERE purge_at IS NOT NULL;
