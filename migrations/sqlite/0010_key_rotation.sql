-- Master-key rotation. Which key version seals new secrets is the database's word, so that every
-- instance seals with the same one and it changes only through `credvault key rotate`: the
-- version with the highest current_rank is current. A database from before rotation has one
-- version, current from the start.
ALTER TABLE encryption_keys ADD COLUMN current_rank INTEGER;
ALTER TABLE encryption_keys ADD COLUMN made_current_at INTEGER;
UPDATE encryption_keys SET current_rank = 1, made_current_at = created_at
    WHERE version = (SELECT min(version) FROM encryption_keys);

-- Leases that let one instance at a time run a job (the rewrap): the holder renews its lease
-- while it works; a lease not renewed by expires_at (microseconds) may be taken over.
CREATE TABLE job_leases (
    name       TEXT PRIMARY KEY NOT NULL,
    holder     TEXT NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT;
