-- credvault schema, PostgreSQL flavour: the same logical schema as migrations/sqlite, in native
-- types (uuid, timestamptz, inet, bytea). Table and column names follow the seed
-- (customers, cloud_credentials, credential_audit_log). Times are stored with microsecond
-- precision, as on SQLite, so both backends order and compare identically.

CREATE TABLE customers (
    id                uuid PRIMARY KEY,
    email             text NOT NULL UNIQUE,
    company_name      text NOT NULL,
    -- active, trial, suspended, cancelled (the seed's values)
    status            text NOT NULL DEFAULT 'active'
                      CHECK (status IN ('active', 'trial', 'suspended', 'cancelled')),
    subscription_tier text NOT NULL DEFAULT 'free'
                      CHECK (subscription_tier IN ('free', 'starter', 'professional', 'enterprise')),
    created_at        timestamptz NOT NULL
);

CREATE TABLE cloud_credentials (
    id                    uuid PRIMARY KEY,
    customer_id           uuid NOT NULL REFERENCES customers (id),
    provider              text NOT NULL CHECK (provider IN ('vultr', 'aws', 'gcp', 'azure')),
    credential_name       text NOT NULL,
    -- The sealed blob (crypto::envelope): format version, key version, wrapped data key,
    -- AES-256-GCM ciphertext. Sealed in the credvault process; no key ever reaches the database.
    encrypted_credentials bytea NOT NULL,
    -- Copy of the key version inside the blob, so rotation can find rows still on an old key.
    key_version           integer NOT NULL,
    credential_type       text NOT NULL,
    permissions           text NOT NULL CHECK (permissions IN ('read_only', 'read_write', 'admin')),
    -- Soft delete: false once deleted; the row stays for the audit trail.
    is_active             boolean NOT NULL DEFAULT true,
    is_verified           boolean NOT NULL DEFAULT false,
    -- The customer's explicit choice for Get by provider; at most one per (customer, provider).
    is_default            boolean NOT NULL DEFAULT false,
    last_verified_at      timestamptz,
    last_used_at          timestamptz,
    usage_count           bigint NOT NULL DEFAULT 0,
    -- Store's optional idempotency key, and an HMAC of the request content (keyed by a key
    -- derived from the master key, so it cannot be used to test guesses of a secret).
    idempotency_key       text,
    request_fingerprint   bytea,
    created_at            timestamptz NOT NULL,
    updated_at            timestamptz NOT NULL,
    deleted_at            timestamptz
);

-- One active credential per (customer, provider, name); deleted ones may repeat names.
-- The store tells these constraints apart by name: keep the names.
CREATE UNIQUE INDEX cloud_credentials_active_name
    ON cloud_credentials (customer_id, provider, credential_name) WHERE is_active;
CREATE UNIQUE INDEX cloud_credentials_one_default
    ON cloud_credentials (customer_id, provider) WHERE is_default;
CREATE UNIQUE INDEX cloud_credentials_idempotency
    ON cloud_credentials (customer_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
-- List's newest-first keyset paging and Get's preference order.
CREATE INDEX cloud_credentials_by_customer
    ON cloud_credentials (customer_id, created_at DESC, id DESC);

CREATE TABLE credential_audit_log (
    id             uuid PRIMARY KEY,
    -- Null for events not about one credential (e.g. a refused Store).
    credential_id  uuid,
    customer_id    uuid NOT NULL,
    action         text NOT NULL CHECK (action IN
                   ('created', 'updated', 'deleted', 'verified', 'used', 'failed', 'denied')),
    -- Human-readable context built from metadata only; never a secret.
    action_details text NOT NULL,
    ip_address     inet,
    created_at     timestamptz NOT NULL
);

CREATE INDEX credential_audit_log_by_customer ON credential_audit_log (customer_id, created_at);
CREATE INDEX credential_audit_log_by_credential ON credential_audit_log (credential_id, created_at);

-- One row per key version: a value derived one-way from the key, written on first start and
-- compared on every later one, so a wrong key stops start-up instead of failing at each Get.
CREATE TABLE encryption_keys (
    version     integer PRIMARY KEY,
    check_value bytea NOT NULL,
    created_at  timestamptz NOT NULL
);
