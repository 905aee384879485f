-- Tamper evidence for the audit log.
--
-- row_mac: HMAC-SHA256 (key derived from the master key) over the row's content, written with
-- the row. A changed or forged row fails it.
-- seal_seq / seal_hash: the row's place in one hash chain, added by the background sealer
-- shortly after the row commits: seal_hash = HMAC(prev seal_hash, seal_seq, row_mac). A deleted,
-- inserted or reordered sealed row breaks the chain; audit_seal holds the chain's head (with
-- its own MAC), so dropping the newest rows is caught too. Requests never touch the head: there
-- is no global lock on the hot path.
ALTER TABLE credential_audit_log ADD COLUMN row_mac bytea;
ALTER TABLE credential_audit_log ADD COLUMN seal_seq bigint;
ALTER TABLE credential_audit_log ADD COLUMN seal_hash bytea;
CREATE UNIQUE INDEX credential_audit_log_seal ON credential_audit_log (seal_seq);
CREATE INDEX credential_audit_log_unsealed ON credential_audit_log (created_at, id) WHERE seal_seq IS NULL;

CREATE TABLE audit_seal (
    id         integer PRIMARY KEY CHECK (id = 1),
    seq        bigint NOT NULL,
    hash       bytea NOT NULL,
    -- HMAC over (seq, hash); NULL only before the first seal.
    mac        bytea,
    updated_at timestamptz NOT NULL
);
INSERT INTO audit_seal (id, seq, hash, mac, updated_at) VALUES (1, 0, '\x0000000000000000000000000000000000000000000000000000000000000000', NULL, now());
