-- Get's audit rows are written first to a narrow, append-only journal, and moved into
-- credential_audit_log in batches.
--
-- A Get's `used` row still commits (fsync'd) before its secret leaves: it commits here, in the
-- same transaction that counts the use. What moves out of Get's path is the cost of the audit
-- log's indexes: written row by row, the index on credential_id alone dirtied one random page
-- of the log per Get, and SQLite's WAL writes and fsyncs whole pages. The journal has no index
-- but its rowid, so a group of Gets appends to one or two pages.
--
-- The store moves the journal into the log (same columns, same MAC, rows in journal order, in
-- one transaction) every few thousand rows, before every read of the log (audit queries,
-- sealing, verification), so readers of the log through credvault never miss a row. Anyone
-- reading the file by hand sees the log's rows still to be moved here.
CREATE TABLE credential_use_journal (
    seq            INTEGER PRIMARY KEY,
    id             TEXT NOT NULL,
    credential_id  TEXT NOT NULL,
    customer_id    TEXT NOT NULL,
    action         TEXT NOT NULL,
    action_details TEXT NOT NULL,
    ip_address     TEXT,
    actor          TEXT,
    created_at     INTEGER NOT NULL,
    row_mac        BLOB
) STRICT;
