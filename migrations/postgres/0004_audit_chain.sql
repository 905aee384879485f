-- The audit chain moves out of the log's rows into a narrow table of its own.
--
-- Sealing used to update every audit row once more (seal_seq, seal_hash): a second write of the
-- wide row and all its indexes for every Get. Now the sealer only appends small rows here, and
-- an audit row is written once. The chain means the same (see 0003): link `seq` is
-- hash = HMAC(previous hash, seq, row_mac of the audit row `audit_id`).
--
-- How the sealer finds new rows without a flag to clear: each row records the transaction that
-- wrote it (tx). A row not yet visible to the sealer belongs to a transaction still running,
-- whose id is at least the oldest running one (the snapshot's xmin). So each pass takes the rows
-- with tx >= the xmin recorded by the previous pass that are not on the chain yet, and records
-- its own xmin. A BRIN index finds them: rows are appended in roughly tx order, and BRIN costs
-- the insert next to nothing.
CREATE TABLE audit_chain (
    seq      bigint PRIMARY KEY,
    audit_id uuid NOT NULL UNIQUE,
    hash     bytea NOT NULL
);
INSERT INTO audit_chain (seq, audit_id, hash)
    SELECT seal_seq, id, seal_hash FROM credential_audit_log WHERE seal_seq IS NOT NULL;

-- Rows sealed already keep a NULL tx (never scanned again); rows not sealed yet get 0 so the
-- first pass takes them. The default is set after the column is added, so existing rows are not
-- rewritten.
ALTER TABLE credential_audit_log ADD COLUMN tx bigint;
UPDATE credential_audit_log SET tx = 0 WHERE seal_seq IS NULL;
ALTER TABLE credential_audit_log ALTER COLUMN tx SET DEFAULT pg_current_xact_id()::text::bigint;
CREATE INDEX credential_audit_log_by_tx ON credential_audit_log USING brin (tx);

DROP INDEX credential_audit_log_seal;
DROP INDEX credential_audit_log_unsealed;
ALTER TABLE credential_audit_log DROP COLUMN seal_seq, DROP COLUMN seal_hash;

-- Where the next pass starts: the previous pass's xmin; or, after a full batch, right after its
-- last row (next_tx, next_id).
ALTER TABLE audit_seal ADD COLUMN next_tx bigint NOT NULL DEFAULT 0;
ALTER TABLE audit_seal ADD COLUMN next_id uuid;
