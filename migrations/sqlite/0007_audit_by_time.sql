-- The audit log is read newest first, through one index in time order, instead of two indexes
-- that the listing never used.
--
-- credential_audit_log_by_customer and _by_credential put each new row next to the earlier rows
-- of its customer or credential: a random page of each index per row, whose key spread grows
-- with the number of customers and credentials in use. Every move of Get's use journal (see
-- 0005) wrote them, in the one serial writer every Get waits for: with 540,000 rows in the log,
-- moving 4096 journal rows wrote ~2000 pages to the WAL and took ~100 ms; with the index below
-- instead, ~680 pages and ~22 ms. And the listing's filters, each optional ("?1 IS NULL OR customer_id =
-- ?1"), kept SQLite from using either: every page of the listing read and sorted the whole log.
--
-- credential_audit_log_by_time is in the listing's order, so the listing walks it from the newest
-- row (or from its page cursor) and stops at a page's worth of matches. New rows append to its
-- end. It carries the columns the listing filters on, so rows that do not match are passed over
-- within the index, without reading them from the table. A filter that matches few rows walks
-- back until it fills a page or reaches `since`: on that 540,000-row log, a credential's one
-- "created" row took ~100 ms to find (against ~80 ms for the old full read and sort), its 50
-- newest events ~9 ms (~100 ms), the log's 50 newest ~0.5 ms (~600 ms).
--
-- Building the index reads the whole log once, when this migration runs.
DROP INDEX credential_audit_log_by_customer;
DROP INDEX credential_audit_log_by_credential;
CREATE INDEX credential_audit_log_by_time
    ON credential_audit_log (created_at, id, customer_id, credential_id, action);
