-- Retiring a master-key version: once it wraps no data key, `credvault key retire` records when
-- (retired_at) and writes a checkpoint of the audit chain's head, MACed by the current version,
-- so that `audit verify` accepts the rows the retired version MACed without its key.
ALTER TABLE encryption_keys ADD COLUMN retired_at INTEGER;

CREATE TABLE audit_checkpoints (
    -- The chain position it vouches for, and that link's hash.
    seq             INTEGER PRIMARY KEY NOT NULL,
    hash            BLOB NOT NULL,
    mac             BLOB NOT NULL,
    retired_version INTEGER NOT NULL,
    created_at      INTEGER NOT NULL
) STRICT;
