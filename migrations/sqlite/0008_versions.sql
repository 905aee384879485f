-- Credentials have numbered versions. A credential keeps its id, customer, provider and name for
-- life; each version holds its own sealed secret (format 2 of crypto::envelope binds the version
-- number), its state and who added it. The secret lives only here: cloud_credentials keeps which
-- version is current, so a destroyed version's ciphertext exists nowhere else.
--
-- Every existing credential becomes version 1, its blob copied as it is (format 1, which opens
-- as version 1 only): no key is needed, and no secret is rewritten.
CREATE TABLE credential_versions (
    credential_id         TEXT NOT NULL REFERENCES cloud_credentials (id),
    version               INTEGER NOT NULL CHECK (version >= 1),
    -- enabled: may be handed out; disabled: kept, not handed out; destroyed: gone, for good.
    state                 TEXT NOT NULL CHECK (state IN ('enabled', 'disabled', 'destroyed')),
    -- The sealed blob and the key version inside it; NULL once destroyed.
    encrypted_credentials BLOB,
    key_version           INTEGER,
    -- The acting token's name; NULL for versions from before versions existed.
    created_by            TEXT,
    -- AddVersion's idempotency key and request fingerprint, as on cloud_credentials for Store.
    idempotency_key       TEXT,
    request_fingerprint   BLOB,
    created_at            INTEGER NOT NULL,
    destroyed_at          INTEGER,
    PRIMARY KEY (credential_id, version),
    CHECK ((state = 'destroyed') = (encrypted_credentials IS NULL))
) STRICT, WITHOUT ROWID;
CREATE UNIQUE INDEX credential_versions_idempotency
    ON credential_versions (credential_id, idempotency_key) WHERE idempotency_key IS NOT NULL;

INSERT INTO credential_versions (credential_id, version, state, encrypted_credentials, key_version, created_at)
    SELECT id, 1, 'enabled', encrypted_credentials, key_version, created_at FROM cloud_credentials;

-- current_version: the newest enabled version (NULL when none is); latest_version: the highest
-- number given out; rotated_at: when the current version was added; revision: counts every
-- change of the metadata or the versions (the etag), not uses or verifications.
ALTER TABLE cloud_credentials ADD COLUMN current_version INTEGER;
ALTER TABLE cloud_credentials ADD COLUMN latest_version INTEGER NOT NULL DEFAULT 1;
ALTER TABLE cloud_credentials ADD COLUMN rotated_at INTEGER;
ALTER TABLE cloud_credentials ADD COLUMN revision INTEGER NOT NULL DEFAULT 1;
UPDATE cloud_credentials SET current_version = 1, rotated_at = created_at;
ALTER TABLE cloud_credentials DROP COLUMN encrypted_credentials;
ALTER TABLE cloud_credentials DROP COLUMN key_version;

-- The audit log takes the lifecycle's actions. SQLite cannot change a CHECK in place, so the log
-- is copied once more; the copy checks the action's shape only (the code writes only the actions
-- it knows, and every row is MACed), so later actions need no copy. The copy also gives the log
-- an explicit INTEGER PRIMARY KEY: the sealer walks rows in rowid order, and VACUUM may renumber
-- the rowids of a table without one.
CREATE TABLE credential_audit_log_v3 (
    seq            INTEGER PRIMARY KEY,
    id             TEXT NOT NULL UNIQUE,
    credential_id  TEXT,
    customer_id    TEXT,
    action         TEXT NOT NULL CHECK (length(action) BETWEEN 1 AND 32 AND action NOT GLOB '*[^a-z_]*'),
    action_details TEXT NOT NULL,
    ip_address     TEXT,
    actor          TEXT,
    created_at     INTEGER NOT NULL,
    row_mac        BLOB
) STRICT;
INSERT INTO credential_audit_log_v3
    (seq, id, credential_id, customer_id, action, action_details, ip_address, actor, created_at, row_mac)
    SELECT rowid, id, credential_id, customer_id, action, action_details, ip_address, actor, created_at, row_mac
    FROM credential_audit_log ORDER BY rowid;
DROP TABLE credential_audit_log;
ALTER TABLE credential_audit_log_v3 RENAME TO credential_audit_log;
CREATE INDEX credential_audit_log_by_time
    ON credential_audit_log (created_at, id, customer_id, credential_id, action);
