-- A Get of a credential the vault has not served before counts the uses of it still in the use
-- journal (0005: up to 4096 rows before they move into the log): by this index, instead of by
-- reading every row of the journal. With 100,000 credentials most Gets miss the vault's cache:
-- Get at 16 clients went from 3,487-4,220 to 6,122-6,632 req/s; with 1,000 (all cached) it stayed
-- within noise (docs/benchmarks.md, "Scale").
CREATE INDEX credential_use_journal_by_credential ON credential_use_journal (credential_id);
