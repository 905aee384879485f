-- The audit chain moves out of the log's rows into a narrow table of its own.
--
-- Sealing used to update every audit row once more (seal_seq, seal_hash): a second write of the
-- wide row and of two more indexes for every Get. Now the sealer only appends small rows here,
-- and an audit row is written once. The chain means the same (see 0003): link `seq` is
-- hash = HMAC(previous hash, seq, row_mac of the audit row `audit_id`).
--
-- How the sealer finds new rows: SQLite has one writer at a time and gives each new row the
-- next rowid, so rows commit in rowid order and a row not yet visible to the sealer gets a rowid
-- above every row it sees. Each pass takes the rows past the last rowid it sealed.
CREATE TABLE audit_chain (
    seq      INTEGER PRIMARY KEY,
    audit_id TEXT NOT NULL UNIQUE,
    hash     BLOB NOT NULL
) STRICT;
INSERT INTO audit_chain (seq, audit_id, hash)
    SELECT seal_seq, id, seal_hash FROM credential_audit_log WHERE seal_seq IS NOT NULL;

DROP INDEX credential_audit_log_seal;
DROP INDEX credential_audit_log_unsealed;
ALTER TABLE credential_audit_log DROP COLUMN seal_seq;
ALTER TABLE credential_audit_log DROP COLUMN seal_hash;

-- Where the next pass starts: 0 makes the first pass look at every row (those chained before
-- this migration are skipped as already on the chain).
ALTER TABLE audit_seal ADD COLUMN next_rowid INTEGER NOT NULL DEFAULT 0;
