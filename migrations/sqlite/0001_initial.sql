-- credvault schema, SQLite flavour. Table and column names follow the seed
-- (customers, cloud_credentials, credential_audit_log) so an existing schema maps one to one.
-- Ids are lowercase hyphenated UUID text; times are INTEGER microseconds since the Unix epoch
-- (UTC), which sort and compare exactly.

CREATE TABLE customers (
    id                TEXT PRIMARY KEY NOT NULL,
    email             TEXT NOT NULL UNIQUE,
    company_name      TEXT NOT NULL,
    -- active, trial, suspended, cancelled (the seed's values)
    status            TEXT NOT NULL DEFAULT 'active'
                      CHECK (status IN ('active', 'trial', 'suspended', 'cancelled')),
    subscription_tier TEXT NOT NULL DEFAULT 'free'
                      CHECK (subscription_tier IN ('free', 'starter', 'professional', 'enterprise')),
    created_at        INTEGER NOT NULL
) STRICT;

CREATE TABLE cloud_credentials (
    id                    TEXT PRIMARY KEY NOT NULL,
    customer_id           TEXT NOT NULL REFERENCES customers (id),
    provider              TEXT NOT NULL CHECK (provider IN ('vultr', 'aws', 'gcp', 'azure')),
    credential_name       TEXT NOT NULL,
    -- The sealed blob (crypto::envelope): format version, key version, wrapped data key,
    -- AES-256-GCM ciphertext. Sealed in the credvault process; no key ever reaches the database.
    encrypted_credentials BLOB NOT NULL,
    -- Copy of the key version inside the blob, so rotation can find rows still on an old key.
    key_version           INTEGER NOT NULL,
    credential_type       TEXT NOT NULL,
    permissions           TEXT NOT NULL CHECK (permissions IN ('read_only', 'read_write', 'admin')),
    -- Soft delete: 0 once deleted; the row stays for the audit trail.
    is_active             INTEGER NOT NULL DEFAULT 1 CHECK (is_active IN (0, 1)),
    is_verified           INTEGER NOT NULL DEFAULT 0 CHECK (is_verified IN (0, 1)),
    -- The customer's explicit choice for Get by provider; at most one per (customer, provider).
    is_default            INTEGER NOT NULL DEFAULT 0 CHECK (is_default IN (0, 1)),
    last_verified_at      INTEGER,
    last_used_at          INTEGER,
    usage_count           INTEGER NOT NULL DEFAULT 0,
    -- Store's optional idempotency key, and an HMAC of the request content (keyed by a key
    -- derived from the master key, so it cannot be used to test guesses of a secret).
    idempotency_key       TEXT,
    request_fingerprint   BLOB,
    created_at            INTEGER NOT NULL,
    updated_at            INTEGER NOT NULL,
    deleted_at            INTEGER
) STRICT;

-- One active credential per (customer, provider, name); deleted ones may repeat names.
CREATE UNIQUE INDEX cloud_credentials_active_name
    ON cloud_credentials (customer_id, provider, credential_name) WHERE is_active = 1;
CREATE UNIQUE INDEX cloud_credentials_one_default
    ON cloud_credentials (customer_id, provider) WHERE is_default = 1;
CREATE UNIQUE INDEX cloud_credentials_idempotency
    ON cloud_credentials (customer_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
-- List's newest-first keyset paging and Get's preference order.
CREATE INDEX cloud_credentials_by_customer
    ON cloud_credentials (customer_id, created_at DESC, id DESC);

CREATE TABLE credential_audit_log (
    id             TEXT PRIMARY KEY NOT NULL,
    -- Null for events not about one credential (e.g. a refused Store).
    credential_id  TEXT,
    customer_id    TEXT NOT NULL,
    action         TEXT NOT NULL CHECK (action IN
                   ('created', 'updated', 'deleted', 'verified', 'used', 'failed', 'denied')),
    -- Human-readable context built from metadata only; never a secret.
    action_details TEXT NOT NULL,
    ip_address     TEXT,
    created_at     INTEGER NOT NULL
) STRICT;

CREATE INDEX credential_audit_log_by_customer ON credential_audit_log (customer_id, created_at);
CREATE INDEX credential_audit_log_by_credential ON credential_audit_log (credential_id, created_at);

-- One row per key version: a value derived one-way from the key, written on first start and
-- compared on every later one, so a wrong key stops start-up instead of failing at each Get.
CREATE TABLE encryption_keys (
    version     INTEGER PRIMARY KEY NOT NULL,
    check_value BLOB NOT NULL,
    created_at  INTEGER NOT NULL
) STRICT;
