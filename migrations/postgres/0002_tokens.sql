-- API tokens (who may call) and the acting token on every audit row.

CREATE TABLE api_tokens (
    id          uuid PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    -- Space-separated scopes, e.g. 'credentials:read secrets:read'.
    scopes      text NOT NULL,
    -- A customer id, or '*' for every customer.
    customer    text NOT NULL,
    -- SHA-256 of the token's 32 random secret bytes; the token itself is shown once, never stored.
    secret_hash bytea NOT NULL CHECK (length(secret_hash) = 32),
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz,
    revoked_at  timestamptz
);

-- The acting token's name ('cli' for the operator's commands), and rows whose customer is
-- unknown (a denied request for a credential that does not exist).
ALTER TABLE credential_audit_log ADD COLUMN actor text;
ALTER TABLE credential_audit_log ALTER COLUMN customer_id DROP NOT NULL;
