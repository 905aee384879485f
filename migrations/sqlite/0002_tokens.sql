-- API tokens (who may call) and the acting token on every audit row.

CREATE TABLE api_tokens (
    id          TEXT PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL UNIQUE,
    -- Space-separated scopes, e.g. 'credentials:read secrets:read'.
    scopes      TEXT NOT NULL,
    -- A customer id, or '*' for every customer.
    customer    TEXT NOT NULL,
    -- SHA-256 of the token's 32 random secret bytes; the token itself is shown once, never stored.
    secret_hash BLOB NOT NULL CHECK (length(secret_hash) = 32),
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER,
    revoked_at  INTEGER
) STRICT;

-- The audit log gains the acting token's name, and rows whose customer is unknown (a denied
-- request for a credential that does not exist). SQLite cannot relax NOT NULL in place.
CREATE TABLE credential_audit_log_v2 (
    id             TEXT PRIMARY KEY NOT NULL,
    credential_id  TEXT,
    customer_id    TEXT,
    action         TEXT NOT NULL CHECK (action IN
                   ('created', 'updated', 'deleted', 'verified', 'used', 'failed', 'denied')),
    action_details TEXT NOT NULL,
    ip_address     TEXT,
    -- The acting token's name ('cli' for the operator's commands).
    actor          TEXT,
    created_at     INTEGER NOT NULL
) STRICT;
INSERT INTO credential_audit_log_v2
    (id, credential_id, customer_id, action, action_details, ip_address, actor, created_at)
    SELECT id, credential_id, customer_id, action, action_details, ip_address, NULL, created_at
    FROM credential_audit_log ORDER BY rowid;
DROP TABLE credential_audit_log;
ALTER TABLE credential_audit_log_v2 RENAME TO credential_audit_log;
CREATE INDEX credential_audit_log_by_customer ON credential_audit_log (customer_id, created_at);
CREATE INDEX credential_audit_log_by_credential ON credential_audit_log (credential_id, created_at);
